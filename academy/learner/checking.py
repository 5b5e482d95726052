"""One check of one notebook file against its module's hidden suite, as ``f0 check`` and the
grade cells run it: read the file, refuse another module's notebook, grade it in the trusted
runner, record it in the learner's progress, and put the result in words."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from academy.errors import UsageError
from academy.learner.feedback import ExerciseLine, next_step, not_started, summarise
from academy.manifest import Course, Module

__all__ = ["CheckResult", "check_notebook", "notebook_identity", "read_notebook"]


@dataclass
class CheckResult:
    course: Course
    module: Module
    path: Path
    report: Any  # academy.grading.suite_runner.SuiteReport
    lines: list[ExerciseLine]
    sha256: str
    recorded: Any = None  # the progress update (academy.learner.progress), when recorded
    notes: list[str] = field(default_factory=list)

    def line(self, exercise_id: str) -> ExerciseLine:
        return next(line for line in self.lines if line.exercise.id == exercise_id)

    @property
    def next_step(self) -> str:
        return next_step(self.course, self.module, self.lines)


def read_notebook(path: Path) -> tuple[bytes, Any]:
    import nbformat

    try:
        data = path.read_bytes()
        return data, nbformat.reads(data.decode("utf-8"), as_version=4)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0] if str(exc) else ""
        reason = reason or type(exc).__name__
        raise UsageError(f"cannot read notebook {path}: {reason}") from exc


def notebook_identity(nb: Any) -> dict[str, Any]:
    """The course and module a notebook says it belongs to (set by ``f0 generate``)."""
    meta = nb.get("metadata", {}).get("academy", {})
    return meta if isinstance(meta, dict) else {}


def check_identity(course: Course, module: Module, nb: Any, path: Path) -> None:
    """Refuse a notebook that states another course or module than the one being checked."""
    identity = notebook_identity(nb)
    said_course, said_module = identity.get("course"), identity.get("module")
    if said_course is not None and said_course != course.course_id:
        raise UsageError(
            f"{path} is a notebook of course {said_course!r}, not {course.course_id!r}: "
            "nothing was checked or recorded"
        )
    if said_module is not None and said_module != module.id:
        raise UsageError(
            f"{path} is {said_module}'s notebook, not {module.id}'s: check it with "
            f"`f0 check {said_module} {path}`; nothing was checked or recorded"
        )


def check_notebook(course: Course, module: Module, path: Path, record: bool = True) -> CheckResult:
    from academy.learner.progress import ProgressStore, record_check
    from academy.service.client import grade

    data, nb = read_notebook(path)
    check_identity(course, module, nb, path)
    report = grade(course, module, nb)  # on the course's grading service when one is set
    released_path = course.release_notebook(module)
    released = read_notebook(released_path)[1] if released_path.is_file() else None
    lines = summarise(report, not_started(module, nb, released))
    result = CheckResult(course, module, path, report, lines, hashlib.sha256(data).hexdigest())
    if record:
        store = ProgressStore(course)
        result.recorded = record_check(store, report, Path(store.relative(path)), data)
    return result
