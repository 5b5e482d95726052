"""A certificate page (HTML) that carries its own signed credential, and its check.

The page ``HtmlCertificate`` renders embeds the VC-JWT it shows in
``<script type="application/jwt" id="f0-credential">`` (a data block: browsers never run it),
so the page alone is the certificate: ``f0 verify page.html`` verifies the embedded
credential, then renders the page again from what was verified and requires the very same
bytes. A page whose name, level, scores or markup differ from its signed credential fails,
and the failure names the first text that differs.

The page is drawn with HTML and CSS only (no picture, no script, no outside resource), so it
stays self-contained and renders the same from the same credential. It names the version of
the template that drew it (``<meta name="generator" ...>``), and is drawn again with that
version's template (``HtmlCertificate`` keeps older templates), so a page handed out before a
change of the template still verifies.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from html.parser import HTMLParser
from typing import Any

from academy.errors import VerificationError

__all__ = [
    "CERTIFICATE_FEEDBACK",
    "PAGE_DIFFERS",
    "certificate_page",
    "check_page",
    "embedded_token",
    "is_page",
]

SCRIPT_ID = "f0-credential"
# the certificate's name in nbgrader's feedback: feedback/<student>/<assignment>/certificate.html
CERTIFICATE_FEEDBACK = "certificate"
_SCRIPT = re.compile(
    rb'<script type="application/jwt" id="' + SCRIPT_ID.encode() + rb'">([^<]*)</script>'
)
_TOKEN_FILE = re.compile(rb"<code>f0 verify ([^<]*)</code>")
_GENERATOR = re.compile(
    rb'<meta name="generator" content="framework0-academy certificate page ([0-9]{1,4})">'
)
_SAFE_FILE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
# how every failure of a page whose credential verified begins (a VerificationError)
PAGE_DIFFERS = "the page differs from its signed credential"


def is_page(data: bytes) -> bool:
    """Whether a certificate file is an HTML page rather than a bare VC-JWT."""
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def embedded_token(data: bytes) -> bytes:
    """The VC-JWT a certificate page embeds (exactly one data block)."""
    found = _SCRIPT.findall(data)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise VerificationError(
            f'malformed: the page has {what} <script type="application/jwt" id="{SCRIPT_ID}"> '
            "block(s); a certificate page embeds exactly one signed credential"
        )
    return found[0]


def _payload(token: str) -> dict[str, Any]:
    """The payload of a token this process signed or verified (no check here)."""
    try:
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, binascii.Error, ValueError) as exc:
        raise VerificationError(f"malformed: the payload cannot be read ({exc})") from exc


def certificate_page(
    token: str,
    token_file: str,
    credential: dict[str, Any] | None = None,
    version: int | None = None,
) -> str:
    """The certificate page of a signed credential; ``token_file`` is the file the page tells
    the reader to verify (the page itself, or the ``.jwt`` beside it); ``version``: the page
    version to draw (default: the current one)."""
    from academy.certificates.credential import CertificateView
    from academy.certificates.render import HtmlCertificate

    view = CertificateView.from_credential(credential or _payload(token))
    return HtmlCertificate().render(view, token, token_file, version)


class _Text(HTMLParser):
    """The text a reader sees: every text node outside <script> and <style>, stripped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not self._hidden:
            self.texts.append(text)


def _texts(page: str) -> list[str]:
    parser = _Text()
    parser.feed(page)
    parser.close()
    return parser.texts


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_page(data: bytes, token: str, credential: dict[str, Any]) -> None:
    """Raise a ``VerificationError`` starting with ``PAGE_DIFFERS`` unless ``data`` is exactly
    the page of the verified ``credential`` (signed as ``token``)."""
    from academy.certificates.render import HtmlCertificate

    made_by = _GENERATOR.search(data)
    version = int(made_by.group(1)) if made_by else 0
    if HtmlCertificate.template_name(version) is None:
        raise VerificationError(
            f"{PAGE_DIFFERS}: it names no version of the course's certificate page that this "
            f"f0 can draw ({version or 'none'}); verify the .jwt issued with it"
        )
    named = _TOKEN_FILE.search(data)
    token_file = html.unescape(named.group(1).decode("utf-8", "replace")) if named else ""
    if not _SAFE_FILE.match(token_file):
        raise VerificationError(
            f"{PAGE_DIFFERS}: it does not name a certificate file "
            "to verify the way the course's pages do"
        )
    expected = certificate_page(token, token_file, credential, version)
    if data == expected.encode("utf-8"):
        return
    try:
        shown = _texts(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise VerificationError(f"{PAGE_DIFFERS}: byte {exc.start} is not UTF-8") from exc
    signed = _texts(expected)
    for seen, meant in zip(shown, signed, strict=False):
        if seen != meant:
            raise VerificationError(
                f"{PAGE_DIFFERS}: it shows {_clip(seen)!r} where the credential says "
                f"{_clip(meant)!r}"
            )
    if len(shown) != len(signed):
        extra = shown[len(signed)] if len(shown) > len(signed) else signed[len(shown)]
        verb = "adds" if len(shown) > len(signed) else "leaves out"
        raise VerificationError(f"{PAGE_DIFFERS}: it {verb} the text {_clip(extra)!r}")
    offset = next(
        (i for i, (a, b) in enumerate(zip(data, expected.encode("utf-8"), strict=False)) if a != b),
        min(len(data), len(expected.encode("utf-8"))),
    )
    raise VerificationError(
        f"{PAGE_DIFFERS}: same text, but its markup changed (first at byte {offset})"
    )
