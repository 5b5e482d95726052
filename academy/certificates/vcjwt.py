"""Sign and verify credentials as VC-JWTs (Open Badges 3.0, section 8.2), with PyJWT.

The JWT payload is the credential itself with the registered claims ``iss`` (issuer id),
``jti`` (credential id), ``sub`` (subject id), ``nbf`` (validFrom) and ``exp`` (validUntil);
the JOSE header names the signing key (``kid``, a did:key URL) and the algorithm, EdDSA over
Ed25519. Tokens are made by ``jwt.encode`` and signatures checked by PyJWT's EdDSA algorithm;
all cryptography is PyJWT's and ``cryptography``'s.

Verification is strict about the token's text: three base64url segments in canonical form
only (PyJWT's own decoder accepts non-zero padding bits, so two different texts could carry
one signature), so any changed byte of a certificate file fails, and every failure says why.

A valid signature says which key signed, nothing more: ``academy.certificates.trust`` decides
whether that key is the course's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from academy.certificates.credential import SELF_ASSESSED_TYPE, VC_CONTEXT, parse_time
from academy.certificates.keys import did_key
from academy.errors import SigningKeyError, VerificationError

__all__ = ["CredentialSigner", "CredentialVerifier", "VerificationError", "VerifiedCredential"]

ALGORITHM = "EdDSA"
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_NAMES = ("header", "payload", "signature")
_EDDSA = OKPAlgorithm()  # PyJWT's EdDSA (Ed25519 through `cryptography`)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _epoch(text: str) -> int:
    return int(parse_time(text).timestamp())


class CredentialSigner:
    """Sign credentials whose issuer is this key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.issuer_id = did_key(key.public_key())

    def sign(self, credential: dict[str, Any]) -> str:
        issuer = credential.get("issuer", {}).get("id")
        if issuer != self.issuer_id:
            raise SigningKeyError(
                f"credential issuer {issuer!r} is not this key ({self.issuer_id}): "
                "a credential must be signed by the key its issuer id names"
            )
        claims = {
            "iss": issuer,
            "jti": credential["id"],
            "sub": credential["credentialSubject"]["id"],
            "nbf": _epoch(credential["validFrom"]),
        }
        if "validUntil" in credential:
            claims["exp"] = _epoch(credential["validUntil"])
        fragment = self.issuer_id.removeprefix("did:key:")
        headers = {"kid": f"{self.issuer_id}#{fragment}", "typ": "JWT"}
        return jwt.encode({**credential, **claims}, self.key, algorithm=ALGORITHM, headers=headers)


@dataclass(frozen=True)
class VerifiedCredential:
    credential: dict[str, Any]
    issuer_id: str

    @property
    def self_assessed(self) -> bool:
        achievement = self.credential["credentialSubject"]["achievement"]
        return achievement.get("achievementType") == SELF_ASSESSED_TYPE


class CredentialVerifier:
    """Check a VC-JWT against one public key, offline: text, signature, content, dates."""

    def __init__(self, key: Ed25519PublicKey, leeway_seconds: int = 60) -> None:
        self.key = key
        self.key_id = did_key(key)
        self.leeway = leeway_seconds

    def verify_file(self, path: Path, now: datetime | None = None) -> VerifiedCredential:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise VerificationError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return self.verify_bytes(data, now)

    def verify_bytes(self, data: bytes, now: datetime | None = None) -> VerifiedCredential:
        """A certificate file's bytes: the token and at most one final newline."""
        if data.endswith(b"\n"):
            data = data[:-1]  # the one newline a text file ends with; nothing else is dropped
        try:
            token = data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise VerificationError(
                f"malformed: byte {exc.start} is not ASCII; a VC-JWT is base64url text"
            ) from exc
        return self.verify(token, now)

    def verify(self, token: str, now: datetime | None = None) -> VerifiedCredential:
        header, payload_bytes, signature = self._parse(token)
        if header.get("alg") != ALGORITHM:
            raise VerificationError(
                f"unsupported algorithm {header.get('alg')!r} in the header (expected EdDSA)"
            )
        signing_input = token.rsplit(".", 1)[0].encode("ascii")
        if not _EDDSA.verify(signing_input, self.key, signature):
            signer = str(header.get("kid", "")).split("#")[0]
            if signer and signer != self.key_id:
                raise VerificationError(
                    f"wrong issuer key: the credential names signing key {signer}, but the "
                    f"public key given is {self.key_id}"
                )
            raise VerificationError(
                "bad signature: the credential was changed after it was signed, or it was "
                f"not signed by {self.key_id}"
            )
        try:
            payload = json.loads(payload_bytes)
        except ValueError as exc:
            raise VerificationError(f"malformed: the payload is not JSON ({exc})") from exc
        self._check_content(payload)
        self._check_dates(payload, now or datetime.now(timezone.utc))
        return VerifiedCredential(payload, self.key_id)

    def _parse(self, token: str) -> tuple[dict[str, Any], bytes, bytes]:
        """Header (JSON), payload bytes and signature bytes of a strictly canonical token."""
        parts = token.split(".")
        if len(parts) != 3:
            raise VerificationError(
                f"malformed: a VC-JWT has 3 dot-separated parts, this has {len(parts)}"
            )
        decoded = []
        for name, part in zip(_NAMES, parts, strict=True):
            try:
                raw = _unb64url(part) if _SEGMENT.match(part) else None
            except (binascii.Error, ValueError):
                raw = None
            if raw is None or _b64url(raw) != part:
                raise VerificationError(f"malformed: the {name} is not canonical base64url")
            decoded.append(raw)
        try:
            header = json.loads(decoded[0])
        except ValueError as exc:
            raise VerificationError(f"malformed: the header is not JSON ({exc})") from exc
        if not isinstance(header, dict):
            raise VerificationError("malformed: the header is not a JSON object")
        return header, decoded[1], decoded[2]

    def _check_content(self, payload: dict[str, Any]) -> None:
        def require(condition: bool, problem: str) -> None:
            if not condition:
                raise VerificationError(f"invalid content: {problem}")

        require(isinstance(payload, dict), "the payload is not a JSON object")
        types = payload.get("type", [])
        require(
            "VerifiableCredential" in types and "OpenBadgeCredential" in types,
            f"type is {types!r}, not an OpenBadgeCredential",
        )
        contexts = payload.get("@context", [])
        require(bool(contexts) and contexts[0] == VC_CONTEXT, "@context must start with VC 2.0")
        issuer = payload.get("issuer", {})
        issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
        if issuer_id != self.key_id:
            raise VerificationError(
                f"wrong issuer key: the credential's issuer is {issuer_id}, but the public key "
                f"given is {self.key_id}"
            )
        require(payload.get("iss") == issuer_id, "iss differs from issuer.id")
        require(payload.get("jti") == payload.get("id"), "jti differs from id")
        subject = payload.get("credentialSubject", {})
        require(isinstance(subject, dict), "credentialSubject is not an object")
        require(payload.get("sub") == subject.get("id"), "sub differs from credentialSubject.id")
        achievement = subject.get("achievement", {})
        require(
            isinstance(achievement, dict) and "criteria" in achievement and "name" in achievement,
            "the achievement has no name or criteria",
        )
        for claim, field in (("nbf", "validFrom"), ("exp", "validUntil")):
            if field not in payload and claim not in payload:
                continue
            require(field in payload, f"{claim} is set but {field} is missing")
            try:
                expected = _epoch(payload[field])
            except (TypeError, ValueError) as exc:
                raise VerificationError(f"invalid content: {field}: {exc}") from exc
            require(payload.get(claim) == expected, f"{claim} differs from {field}")
        require("validFrom" in payload, "validFrom is missing")

    def _check_dates(self, payload: dict[str, Any], now: datetime) -> None:
        valid_from = parse_time(payload["validFrom"])
        if (valid_from - now).total_seconds() > self.leeway:
            raise VerificationError(f"not yet valid: valid from {payload['validFrom']}")
        if "validUntil" in payload:
            valid_until = parse_time(payload["validUntil"])
            if (now - valid_until).total_seconds() > self.leeway:
                raise VerificationError(f"expired: valid until {payload['validUntil']}")
