"""Issue certificates: scores in, signed credentials and their pictures out.

``GradebookScores`` reads every student's module scores from nbgrader's gradebook;
``CertificateIssuer`` decides each student's highest level with ``LevelRules`` and has
``CertificateWriter`` sign and write it. ``f0 issue``, the nbgrader exporter and the
learner's ``f0 certify`` all go through ``CertificateWriter``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from academy.certificates.credential import (
    Award,
    CertificateView,
    IssuerProfile,
    Learner,
    build_credential,
)
from academy.certificates.vcjwt import CredentialSigner
from academy.errors import SigningKeyError
from academy.learner.progress import ModuleRecord, level_inputs
from academy.levels import LevelRules, LevelStatus
from academy.manifest import Course

__all__ = [
    "CertificateIssuer",
    "SelfAssessment",
    "CertificateWriter",
    "GradebookScores",
    "IssueReport",
    "StudentScores",
    "WrittenCertificate",
    "critical_from_notebook",
]


@dataclass(frozen=True)
class WrittenCertificate:
    level: str
    learner: str
    jwt: Path
    html: Path
    pdf: Path
    png: Path
    token: str = ""  # the signed credential (the .jwt file's text)


class CertificateWriter:
    """Sign an award and write ``<stem>.jwt``, ``.html``, ``.pdf`` and ``.png`` into a folder."""

    def __init__(self, signer: CredentialSigner, out: Path, pictures: bool = True) -> None:
        self.signer = signer
        self.out = out
        self.pictures = pictures

    def write(self, award: Award, stem: str) -> WrittenCertificate:
        from academy.certificates.render import HtmlCertificate, PrintedCertificate

        credential = build_credential(award)
        token = self.signer.sign(credential)
        self.out.mkdir(parents=True, exist_ok=True)
        stem = safe_name(stem)
        paths = {ext: self.out / f"{stem}.{ext}" for ext in ("jwt", "html", "pdf", "png")}
        paths["jwt"].write_text(token + "\n", encoding="ascii")
        view = CertificateView.from_credential(credential)
        paths["html"].write_text(
            HtmlCertificate().render(view, token, paths["jwt"].name), encoding="utf-8"
        )
        if self.pictures:
            PrintedCertificate().write(view, paths["pdf"], paths["png"])
        return WrittenCertificate(award.status.level.id, award.learner.id, **paths, token=token)


def safe_name(text: str) -> str:
    """A file name from an id: letters, digits, dot, dash and underscore only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "certificate"


@dataclass
class StudentScores:
    learner: Learner
    scores: dict[str, float] = field(default_factory=dict)
    needs_manual_grade: list[str] = field(default_factory=list)  # module ids
    critical: dict[str, list[str]] = field(default_factory=dict)  # module id -> failed checks


def critical_from_notebook(path: Path) -> list[str]:
    """The failed critical checks an autograded notebook's grade cells record.

    ``ScoreHiddenSuites`` writes each grade cell's outputs with
    ``academy.grading.render.exercise_outputs``, whose summary carries them in its metadata
    (the gradebook itself keeps scores only).
    """
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return []
    found: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            meta = output.get("metadata", {}).get("academy", {})
            if isinstance(meta, dict):
                found += [str(item) for item in meta.get("critical_failed", [])]
    return found


class GradebookScores:
    """Each student's score per module (nbgrader assignment named after the module id), less
    any late-submission penalty (``LateSubmissionPlugin``), and the critical checks each
    submission failed, read from its autograded notebook (``autograded/<student>/<module>/``,
    beside the gradebook)."""

    def __init__(self, course: Course, autograded: Path | None = None) -> None:
        self.course = course
        self.autograded = autograded if autograded is not None else course.root / "autograded"

    def read(
        self, gradebook: Any, students: Iterable[str] = (), modules: Iterable[str] = ()
    ) -> list[StudentScores]:
        wanted_students = set(students)
        known = {m.id for m in self.course.modules}
        wanted_modules = set(modules) or known
        out = []
        for student in sorted(gradebook.students, key=lambda s: s.id):
            if wanted_students and student.id not in wanted_students:
                continue
            name = " ".join(p for p in (student.first_name, student.last_name) if p) or student.id
            entry = StudentScores(Learner(student.id, name, student.email or None))
            for submission in student.submissions:
                module_id = submission.assignment.name
                if module_id not in known or module_id not in wanted_modules:
                    continue
                # nbgrader keeps the raw score and the late penalty apart (its export and
                # feedback show the difference); a certificate counts what the course counts
                raw = float(submission.score or 0.0)
                penalty = float(submission.late_submission_penalty or 0.0)
                entry.scores[module_id] = max(0.0, raw - penalty)
                module = self.course.module(module_id)
                graded = self.autograded / student.id / module_id / module.notebook
                failed = critical_from_notebook(graded) if graded.is_file() else []
                if failed:
                    entry.critical[module_id] = failed
                if submission.needs_manual_grade:
                    entry.needs_manual_grade.append(module_id)
            out.append(entry)
        return out


@dataclass
class IssueReport:
    issued: list[WrittenCertificate] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # student id -> why not
    # student id -> "<module>: <exercise>: <message>" of each failed critical check
    critical: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"{len(self.issued)} certificate(s) issued, {len(self.skipped)} student(s) without"
        ]
        lines += [f"  {c.learner}: {c.level} -> {c.jwt}" for c in self.issued]
        lines += [f"  {student}: {why}" for student, why in self.skipped.items()]
        if self.critical:
            lines.append(
                "Critical checks failed (each blocks its module, and every level that needs "
                "it, whatever the score):"
            )
            for student, failed in self.critical.items():
                lines += [f"  {student}: {text}" for text in failed]
        return "\n".join(lines)


class CertificateIssuer:
    """The instructor's side: one certificate per student, for the highest level reached.

    It signs only with the key ``course.yaml`` publishes (``issuer.key_id``): a certificate
    signed by any other key would name the course without being the course's.
    """

    def __init__(
        self,
        course: Course,
        writer: CertificateWriter,
        issuer_name: str | None = None,
        valid_days: int | None = None,
    ) -> None:
        signing = writer.signer.issuer_id
        if course.issuer is None:
            raise SigningKeyError(
                "course.yaml publishes no course key (issuer: name, key_id, public_key), so no "
                "certificate could be verified as the course's; add it first (see `f0 keygen`)"
            )
        if signing != course.issuer.key_id:
            raise SigningKeyError(
                f"the signing key {signing} is not this course's key {course.issuer.key_id} "
                "(course.yaml: issuer.key_id); its certificates would not be the course's, so "
                "sign with the course's private key"
            )
        self.course = course
        self.writer = writer
        self.rules = LevelRules(course)
        self.issuer = IssuerProfile(signing, issuer_name or course.issuer.name)
        self.valid_days = valid_days

    def issue(self, students: Iterable[StudentScores]) -> IssueReport:
        report = IssueReport()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        until = now + timedelta(days=self.valid_days) if self.valid_days else None
        for student in students:
            if any(student.critical.values()):
                report.critical[student.learner.id] = [
                    f"{module_id}: {text}"
                    for module_id, failed in student.critical.items()
                    for text in failed
                ]
            best = self.rules.highest(student.scores, student.critical)
            if best is None:
                report.skipped[student.learner.id] = self._why_not(student)
                continue
            pending = [m for m in student.needs_manual_grade if m in _module_ids(best)]
            if pending:
                report.skipped[student.learner.id] = (
                    f"{', '.join(pending)} still need(s) manual grading in the gradebook"
                )
                continue
            award = Award(self.course, best, student.learner, self.issuer, False, now, until)
            stem = f"{student.learner.id}-{best.level.id}"
            report.issued.append(self.writer.write(award, stem))
        return report

    def _why_not(self, student: StudentScores) -> str:
        upcoming = self.rules.next_level(student.scores, student.critical)
        if upcoming is None:
            return "no level is defined in course.yaml"
        return f"no level reached; {upcoming.level.id}: " + "; ".join(upcoming.missing())


def _module_ids(status: LevelStatus) -> set[str]:
    return {s.module.id for s in status.modules}


class SelfAssessment:
    """The learner's side: an award from their own recorded ``f0 check`` results."""

    def __init__(self, course: Course, records: dict[str, ModuleRecord]) -> None:
        self.course = course
        self.records = records
        self.rules = LevelRules(course)
        self.scores, self.critical = level_inputs(records)

    def best(self) -> LevelStatus | None:
        return self.rules.highest(self.scores, self.critical)

    def next_level(self) -> LevelStatus | None:
        return self.rules.next_level(self.scores, self.critical)

    def changed_notebooks(self, status: LevelStatus) -> list[str]:
        """Modules whose notebook changed since it was checked (the award uses the check)."""
        return [
            s.module.id
            for s in status.modules
            if self.records[s.module.id].notebook_changed(self.course.root)
        ]

    def award(self, status: LevelStatus, learner: Learner, issuer_id: str) -> Award:
        notes = {
            s.module.id: (
                f"Checked {record.checked_at} with f0 check; notebook {record.notebook}, "
                f"sha256 {record.notebook_sha256}; no critical check failed"
            )
            for s in status.modules
            for record in [self.records[s.module.id]]
        }
        return Award(
            self.course,
            status,
            learner,
            IssuerProfile(issuer_id, f"{learner.name} (self-assessed)"),
            self_assessed=True,
            valid_from=datetime.now(timezone.utc).replace(microsecond=0),
            evidence_notes=notes,
        )
