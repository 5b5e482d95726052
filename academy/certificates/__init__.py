"""Certificates: Open Badges 3.0 credentials signed as VC-JWTs with the course's Ed25519 key.

``keys`` makes and reads keys, ``credential`` builds the credential, ``vcjwt`` signs and
verifies it, ``render`` draws the HTML/PDF/PNG certificate, ``issue`` issues from scores, and
``CertificateExporter`` plugs it all into ``nbgrader export``. The exporter is imported only
when asked for, so ``f0 verify`` never loads nbgrader.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CertificateExporter"]


def __getattr__(name: str) -> Any:
    if name == "CertificateExporter":
        from academy.certificates.exporter import CertificateExporter

        return CertificateExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
