"""Whose certificate is it? A credential, checked and judged against the course's own key.

A signature proves which key signed a credential; every name inside it (the issuer's name,
the course, the achievement) is whatever the signer wrote. So one fact decides whether a
certificate is the course's: it verifies against the key ``course.yaml`` publishes
(``issuer.key_id``). Any other valid credential is either **self-assessed** (signed by a
learner's own key and marked so in its signed content) or **signed by another key**, whatever
issuer name it carries, and it is never reported as the course's.

``CertificateCheck`` verifies with the key the verifier chose (``f0 verify --public-key``) or,
by default, with the course's key; a credential that names another key is then checked
against the key it names (a ``did:key`` is the key), so the verdict can still say who signed
it, but it is not accepted. A certificate page (HTML) is checked through the credential it
carries, and must show exactly that credential.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from academy.certificates.keys import did_key, public_key_from_did
from academy.certificates.page import check_page, embedded_token, is_page
from academy.certificates.vcjwt import CredentialVerifier, VerifiedCredential
from academy.errors import KeyFileError, VerificationError

__all__ = ["CertificateCheck", "Standing", "Verdict", "named_signing_key"]

_DID_KEY = re.compile(r"did:key:z[1-9A-HJ-NP-Za-km-z]{1,60}")


class Standing(Enum):
    COURSE = "issued by this course's key"
    SELF_ASSESSED = "self-assessed: signed by the learner's own key"
    OTHER_KEY = "signed by another key"


@dataclass(frozen=True)
class Verdict:
    """A credential whose signature and content verified, and what its signing key is."""

    verified: VerifiedCredential
    standing: Standing
    course_key_id: str | None  # None: the course publishes no key
    key_given: bool  # checked against a key the verifier chose, not the course's

    @property
    def signing_key_id(self) -> str:
        return self.verified.issuer_id

    @property
    def accepted(self) -> bool:
        """The course's certificate, or a valid signature by the very key the verifier gave."""
        return self.standing is Standing.COURSE or self.key_given


class CertificateCheck:
    """Verify a VC-JWT and judge it against the course's published key.

    ``given_key``: check the signature against this key only (``--public-key``). Without it,
    the course's key is used, and a credential naming another key is checked against that key.
    """

    def __init__(
        self,
        course_key: Ed25519PublicKey | None,
        given_key: Ed25519PublicKey | None = None,
        leeway_seconds: int = 60,
    ) -> None:
        if course_key is None and given_key is None:
            raise KeyFileError(
                "no public key to verify against: course.yaml publishes no course key "
                "(issuer: key_id, public_key); pass the issuer's public key"
            )
        self.course_key_id = did_key(course_key) if course_key is not None else None
        self.course_key = course_key
        self.given_key = given_key
        self.leeway = leeway_seconds

    def check_file(self, path: Path, now: datetime | None = None) -> Verdict:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise VerificationError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return self.check_bytes(data, now)

    def check_bytes(self, data: bytes, now: datetime | None = None) -> Verdict:
        """A ``.jwt`` file's bytes, or a certificate page (HTML) carrying its credential:
        then the page must also show exactly what was signed (``academy.certificates.page``)."""
        if not is_page(data):
            return self._check_token(data, now)
        token = embedded_token(data)
        verdict = self._check_token(token, now)
        check_page(data, token.decode("ascii"), verdict.verified.credential)
        return verdict

    def _check_token(self, data: bytes, now: datetime | None) -> Verdict:
        if self.given_key is not None:
            verified = self._verifier(self.given_key).verify_bytes(data, now)
        else:
            assert self.course_key is not None
            try:
                verified = self._verifier(self.course_key).verify_bytes(data, now)
            except VerificationError as course_failure:
                named = named_signing_key(data)
                if named is None or named == self.course_key_id:
                    raise
                try:
                    other = public_key_from_did(named)
                except KeyFileError:
                    raise course_failure from None
                verified = self._verifier(other).verify_bytes(data, now)
        if verified.issuer_id == self.course_key_id:
            standing = Standing.COURSE
        elif verified.self_assessed:
            standing = Standing.SELF_ASSESSED
        else:
            standing = Standing.OTHER_KEY
        return Verdict(verified, standing, self.course_key_id, self.given_key is not None)

    def _verifier(self, key: Ed25519PublicKey) -> CredentialVerifier:
        return CredentialVerifier(key, leeway_seconds=self.leeway)


def named_signing_key(data: bytes | str) -> str | None:
    """The key id a token's header names (``kid`` without its fragment), unverified; for a
    certificate page, the header of the token it embeds."""
    if isinstance(data, bytes) and is_page(data):
        try:
            data = embedded_token(data)
        except VerificationError:
            return None
    if isinstance(data, bytes):
        data = data.decode("ascii", errors="replace")
    header = data.strip().split(".", 1)[0]
    if len(header) > 4096:
        return None
    try:
        parsed = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return None
    kid = parsed.get("kid") if isinstance(parsed, dict) else None
    named = kid.split("#")[0] if isinstance(kid, str) else ""
    return named if _DID_KEY.fullmatch(named) else None
