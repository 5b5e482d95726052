"""Certificates to learners through nbgrader's feedback channel (``f0 issue --feedback``).

``nbgrader release_feedback ASSIGNMENT`` releases every ``*.html`` file of
``feedback/<student>/ASSIGNMENT/`` into the exchange, each under a hash of the submission's
secret and the file's name. So after ``generate_feedback``, each student who earned a
certificate gets the certificate's page as ``feedback/<student>/ASSIGNMENT/certificate.html``:
self-contained (HTML and CSS), carrying its signed credential, and naming itself as the file to
verify (``f0 verify certificate.html``). Students who earned none get nothing, and a
``certificate.html`` left there by an earlier run (before a regrade took the level away) is
removed, so the next release cannot hand it out again.

Stock ``nbgrader fetch_feedback`` fetches only the files named after the learner's submitted
notebooks; the hub's learners use ``academy.hub.exchange.FetchFeedbackAndCertificate``, which
also fetches ``certificate.html`` into ``<assignment>/feedback/<timestamp>/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from academy.certificates.issue import IssueReport
from academy.certificates.page import CERTIFICATE_FEEDBACK, certificate_page
from academy.certificates.published import write_public

__all__ = ["CERTIFICATE_FEEDBACK", "FeedbackDelivery", "deliver_to_feedback"]


@dataclass
class FeedbackDelivery:
    assignment: str
    delivered: dict[str, Path] = field(default_factory=dict)  # student -> certificate.html
    waiting: dict[str, str] = field(default_factory=dict)  # student -> why not delivered
    withdrawn: dict[str, Path] = field(default_factory=dict)  # student -> removed old page

    def summary(self) -> str:
        lines = [
            f"{len(self.delivered)} certificate(s) put in {self.assignment}'s feedback "
            "(nbgrader release_feedback hands them out)"
        ]
        lines += [f"  {student}: {path}" for student, path in self.delivered.items()]
        lines += [f"  {student}: not delivered: {why}" for student, why in self.waiting.items()]
        lines += [
            f"  {student}: no certificate now; removed {path}"
            for student, path in self.withdrawn.items()
        ]
        return "\n".join(lines)


def deliver_to_feedback(
    report: IssueReport, students: Iterable[str], feedback_root: Path, assignment: str
) -> FeedbackDelivery:
    """Put each issued certificate's page into its student's feedback folder of
    ``assignment``; remove old pages of the other ``students``."""
    result = FeedbackDelivery(assignment)
    issued = {c.learner: c for c in report.issued}
    for student in sorted(set(students) | set(issued)):
        folder = feedback_root / student / assignment
        target = folder / f"{CERTIFICATE_FEEDBACK}.html"
        certificate = issued.get(student)
        if certificate is None:
            if target.is_file() or target.is_symlink():
                target.unlink()
                result.withdrawn[student] = target
            continue
        # release_feedback needs both beside every page; generate_feedback writes them
        needed = ("timestamp.txt", "submission_secret.txt")
        if not all((folder / name).is_file() for name in needed):
            result.waiting[student] = (
                f"no feedback for {assignment} yet (run nbgrader generate_feedback "
                f"{assignment} first); the certificate is in {certificate.html.parent}"
            )
            continue
        page = certificate_page(certificate.token, target.name)
        result.delivered[student] = write_public(target, page.encode("utf-8"))
    return result
