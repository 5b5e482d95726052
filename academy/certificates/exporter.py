"""``nbgrader export --exporter=academy.certificates.CertificateExporter``.

Issues every student's certificate straight from the gradebook nbgrader opened::

    nbgrader export --exporter=academy.certificates.CertificateExporter \
        --CertificateExporter.key_file=~/.config/framework0-academy/issuer-private.pem \
        --to certificates/

``--to`` is the output folder (default ``certificates``); nbgrader's ``--student`` and
``--assignment`` filters narrow the students and modules considered.
"""

from __future__ import annotations

from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.plugins import ExportPlugin
from traitlets import Integer, Unicode

from academy import manifest
from academy.certificates.issue import CertificateIssuer, CertificateWriter, GradebookScores
from academy.certificates.keys import KeyPaths, load_private_key
from academy.certificates.vcjwt import CredentialSigner
from academy.errors import CertificateError

__all__ = ["CertificateExporter"]


class CertificateExporter(ExportPlugin):
    """Sign an Open Badges 3.0 certificate for each student's highest level reached."""

    key_file = Unicode(
        str(KeyPaths.default("issuer").private),
        help="The course's Ed25519 private key (PKCS#8 PEM), made with `f0 keygen`.",
    ).tag(config=True)
    issuer_name = Unicode("", help="Issuer name on certificates (default: course.yaml's).").tag(
        config=True
    )
    valid_days = Integer(0, help="Days each certificate stays valid (0: no end date).").tag(
        config=True
    )

    def export(self, gradebook: Gradebook) -> None:
        course = manifest.load()
        out = Path(self.to or "certificates")
        try:
            signer = CredentialSigner(load_private_key(Path(self.key_file).expanduser()))
            issuer = CertificateIssuer(
                course,
                CertificateWriter(signer, out),
                issuer_name=self.issuer_name or None,
                valid_days=self.valid_days or None,
            )
        except CertificateError as exc:
            self.log.error("%s (set --CertificateExporter.key_file; see `f0 keygen`)", exc)
            raise SystemExit(1) from exc
        students = GradebookScores(course).read(
            gradebook, [str(s) for s in self.student], [str(a) for a in self.assignment]
        )
        report = issuer.issue(students)
        self.log.info("Certificates in %s (issuer key %s)", out, signer.issuer_id)
        for line in report.summary().splitlines():
            self.log.info(line)
