"""Ed25519 signing keys: where they live, how they are made and read, and what they are called.

Private keys are PKCS#8 PEM files with mode 0600 in a 0700 folder outside the course
repository (``~/.config/framework0-academy/`` by default, or ``$XDG_CONFIG_HOME``), encrypted
when ``F0_KEY_PASSPHRASE`` is set. Public keys are SubjectPublicKeyInfo PEM files that can be
published. A key is named by its ``did:key`` identifier, which is derived from the public key
alone, so a verifier can tell which key signed a credential without any network lookup (and,
the other way round, ``public_key_from_did`` reads the key back from its id). The course's own
public key is committed, and its id is ``issuer.key_id`` in ``course.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from academy.errors import KeyFileError

__all__ = [
    "KeyFileError",
    "KeyPaths",
    "config_dir",
    "did_key",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "public_key_from_did",
]

PASSPHRASE_ENV = "F0_KEY_PASSPHRASE"
_ED25519_MULTICODEC = b"\xed\x01"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def config_dir() -> Path:
    """Where keys live by default: outside any repository, private to the user."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "framework0-academy"


@dataclass(frozen=True)
class KeyPaths:
    """The private and public key files of one role (``issuer`` or ``learner``)."""

    private: Path
    public: Path

    @classmethod
    def default(cls, role: str, folder: Path | None = None) -> KeyPaths:
        folder = folder or config_dir()
        return cls(folder / f"{role}-private.pem", folder / f"{role}-public.pem")

    @classmethod
    def for_private(cls, private: Path) -> KeyPaths:
        name = private.name.replace("private", "public")
        if name == private.name:
            name = private.stem + ".public.pem"
        return cls(private, private.with_name(name))


def _inside_git_work_tree(path: Path) -> Path | None:
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


def generate_key(paths: KeyPaths, overwrite: bool = False) -> Ed25519PrivateKey:
    """Create a new key pair at ``paths``; refuse inside a git work tree or over a key."""
    folder = paths.private.resolve().parent
    repo = _inside_git_work_tree(folder)
    if repo is not None:
        raise KeyFileError(
            f"refusing to write a private key to {paths.private}: it is inside the git "
            f"repository {repo}; choose a folder outside it (default: {config_dir()})"
        )
    if paths.private.exists() and not overwrite:
        raise KeyFileError(
            f"{paths.private} already exists; certificates signed with it verify only against "
            "its public key, so it is not replaced (move it away first to make a new one)"
        )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    secret = _passphrase()
    encryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    paths.private.unlink(missing_ok=True)
    fd = os.open(paths.private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    paths.public.write_bytes(public_pem(key.public_key()))
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=_passphrase())
    except TypeError as exc:  # encrypted without a passphrase, or the other way round
        raise KeyFileError(f"private key {path}: {exc} (set {PASSPHRASE_ENV})") from exc
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a PEM private key, or the passphrase is wrong") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read public key {path}: {exc.strerror or exc}") from exc
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{path} is a private key; verify with the public key file instead")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def did_key(key: Ed25519PublicKey) -> str:
    """The key's ``did:key`` identifier (multicodec ed25519-pub, multibase base58btc)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "did:key:z" + _base58(_ED25519_MULTICODEC + raw)


def public_key_from_did(did: str) -> Ed25519PublicKey:
    """The public key a ``did:key`` identifier names (the identifier *is* the key)."""
    problem = KeyFileError(f"{did!r} is not an Ed25519 did:key (did:key:z6Mk...)")
    prefix = "did:key:z"
    if not isinstance(did, str) or not did.startswith(prefix) or len(did) > 64:
        raise problem
    raw = _unbase58(did[len(prefix) :])
    if raw is None or len(raw) != 34 or not raw.startswith(_ED25519_MULTICODEC):
        raise problem
    try:
        key = Ed25519PublicKey.from_public_bytes(raw[2:])
    except ValueError as exc:
        raise problem from exc
    if did_key(key) != did:  # only the canonical spelling names the key
        raise problem
    return key


def _unbase58(text: str) -> bytes | None:
    number = 0
    for char in text:
        digit = _BASE58.find(char)
        if digit < 0:
            return None
        number = number * 58 + digit
    leading_ones = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * leading_ones + body


def _base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rest = divmod(number, 58)
        out = _BASE58[rest] + out
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + out
