"""The learner's checks, kept in ``.f0/progress.json`` in the course root.

Every check (``f0 check``, ``f0 watch``, a grade cell, the dashboard) records which notebook
file it graded (path and sha256) and its scores. For each module the file keeps the **latest**
check and the **best** one (the highest total of a single check), and for each exercise its
latest and best score. Levels and certificates are decided from the best checks, so a level
once reached is never taken away by a later, half-done check; ``f0 progress`` and the
dashboard show both. Writes are atomic (a killed writer leaves the old file or the new one,
never half of one) and serialised with a lock, so ``f0 watch`` and a manual ``f0 check`` can
run side by side. Files written before best results were kept (format 1) are read as a
module whose latest check is also its best.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock

from academy.errors import ProgressError
from academy.manifest import Course
from framework0 import atomic_write, clean_temp_files

__all__ = [
    "CheckUpdate",
    "ModuleProgress",
    "ModuleRecord",
    "ProgressError",
    "ProgressStore",
    "file_sha256",
    "record_check",
]

FORMAT = 2
READABLE_FORMATS = (1, 2)


@dataclass(frozen=True)
class ModuleRecord:
    """One check of one module's notebook: what was graded, when, and what it scored."""

    module: str
    score: float
    max_points: float
    exercises: dict[str, float]
    checked_at: str
    notebook: str
    notebook_sha256: str
    flagged: bool = False
    # "<exercise>: <message>" of each failed critical case: any blocks the module's level
    critical_failed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "critical_failed", tuple(self.critical_failed))

    def certifies(self, pass_mark: float) -> bool:
        """This check passes its module for certification (``pass_mark``: academy.levels)."""
        return self.score + 1e-9 >= pass_mark and not self.critical_failed

    @classmethod
    def from_report(cls, report: Any, notebook: Path, notebook_bytes: bytes) -> ModuleRecord:
        """Summarise a ``SuiteReport`` for ``notebook`` (the bytes that were graded)."""
        return cls(
            module=report.module.id,
            score=report.score,
            max_points=report.max_points,
            exercises={key: r.score for key, r in report.exercises.items()},
            checked_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            notebook=str(notebook),
            notebook_sha256=hashlib.sha256(notebook_bytes).hexdigest(),
            flagged=report.flagged,
            critical_failed=tuple(report.critical_failed()),
        )

    def notebook_changed(self, root: Path) -> bool:
        """True when the checked notebook no longer has the bytes that were graded."""
        path = Path(self.notebook)
        path = path if path.is_absolute() else root / path
        return file_sha256(path) != self.notebook_sha256


@dataclass(frozen=True)
class ModuleProgress:
    """A module's latest check, its best check, and each exercise's best score."""

    latest: ModuleRecord
    best: ModuleRecord
    best_exercises: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "latest": asdict(self.latest),
            "best": asdict(self.best),
            "best_exercises": self.best_exercises,
        }

    def updated(self, entry: ModuleRecord, pass_mark: float | None = None) -> ModuleProgress:
        """``entry`` becomes the latest check, and the best when it scores at least as much;
        with ``pass_mark`` a check that passes for certification (no critical failure) always
        ranks above one that does not."""

        def rank(record: ModuleRecord) -> tuple[bool, float]:
            certifies = pass_mark is not None and record.certifies(pass_mark)
            return certifies, record.score

        best = entry if rank(entry) >= rank(self.best) else self.best
        exercises = dict(self.best_exercises)
        for key, score in entry.exercises.items():
            exercises[key] = max(score, exercises.get(key, score))
        return ModuleProgress(entry, best, exercises)

    @classmethod
    def first(cls, entry: ModuleRecord) -> ModuleProgress:
        return cls(entry, entry, dict(entry.exercises))


@dataclass(frozen=True)
class CheckUpdate:
    """What one recorded check changed."""

    entry: ModuleRecord
    before: ModuleProgress | None
    after: ModuleProgress

    @property
    def new_best(self) -> bool:
        return self.before is None or self.entry.score > self.before.best.score

    @property
    def below_best(self) -> bool:
        """An earlier check stays the best (it scored more, or it passes for certification
        and this one does not)."""
        return self.before is not None and self.after.best is not self.entry


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ProgressStore:
    """Read and update ``.f0/progress.json`` for one course checkout."""

    def __init__(self, course: Course) -> None:
        self.course = course
        self.folder = course.root / ".f0"
        self.path = self.folder / "progress.json"

    def progress(self) -> dict[str, ModuleProgress]:
        """Every checked module's latest and best (modules no longer in the manifest are
        dropped)."""
        raw = self._read()
        known = {m.id for m in self.course.modules}
        out = {}
        for module_id, item in raw.get("modules", {}).items():
            if module_id in known:
                out[module_id] = self._parse(module_id, item, raw["format"])
        return out

    def records(self) -> dict[str, ModuleRecord]:
        """The best check of each module: what levels and certificates are decided from."""
        return {key: p.best for key, p in self.progress().items()}

    def latest(self) -> dict[str, ModuleRecord]:
        return {key: p.latest for key, p in self.progress().items()}

    def record(self, entry: ModuleRecord) -> CheckUpdate:
        """Store ``entry`` as its module's latest check (and best, when it scores at least as
        much as the best so far)."""
        self.folder.mkdir(exist_ok=True)
        with self._locked():
            clean_temp_files(self.folder)
            try:
                raw = self._read()
                before_all = {
                    k: self._parse(k, v, raw["format"]) for k, v in raw.get("modules", {}).items()
                }
            except ProgressError:
                raw, before_all = {}, {}  # a damaged file is replaced by the new, valid one
            before = before_all.get(entry.module)
            mark = self._pass_mark(entry.module)
            after = before.updated(entry, mark) if before else ModuleProgress.first(entry)
            before_all[entry.module] = after
            payload = {
                "format": FORMAT,
                "modules": {key: value.to_json() for key, value in before_all.items()},
            }
            text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
            atomic_write(self.path, text.encode("utf-8"))
        return CheckUpdate(entry, before, after)

    def _pass_mark(self, module_id: str) -> float | None:
        from academy.levels import pass_mark

        module = next((m for m in self.course.modules if m.id == module_id), None)
        return pass_mark(module) if module is not None else None

    def relative(self, notebook: Path) -> str:
        """The notebook's path relative to the course root when it lies inside it."""
        resolved = notebook.resolve()
        try:
            return str(resolved.relative_to(self.course.root))
        except ValueError:
            return str(resolved)

    def _parse(self, module_id: str, item: Any, fmt: int) -> ModuleProgress:
        try:
            if fmt == 1:
                return ModuleProgress.first(ModuleRecord(**item))
            return ModuleProgress(
                ModuleRecord(**item["latest"]),
                ModuleRecord(**item["best"]),
                dict(item.get("best_exercises", {})),
            )
        except (TypeError, KeyError) as exc:
            raise ProgressError(f"{self.path}: module {module_id}: {exc}") from exc

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"format": FORMAT}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProgressError(f"{self.path}: not readable JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("format") not in READABLE_FORMATS:
            raise ProgressError(f"{self.path}: not a format-{FORMAT} progress file")
        return raw

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two checks finishing together, the dashboard and f0 watch);
        the file lock of the OS (fcntl or msvcrt) through ``filelock``."""
        with FileLock(self.folder / "progress.lock"):
            yield


def record_check(
    store: ProgressStore, report: Any, notebook: Path, notebook_bytes: bytes
) -> CheckUpdate:
    """Record one graded ``report`` of ``notebook`` (the bytes that were graded)."""
    return store.record(ModuleRecord.from_report(report, notebook, notebook_bytes))


def level_inputs(
    records: dict[str, ModuleRecord],
) -> tuple[dict[str, float], dict[str, tuple[str, ...]]]:
    """The scores and the failed critical cases of each module's record, the two mappings
    ``LevelRules`` decides levels from (the dashboard, ``f0 progress`` and certificates)."""
    scores = {key: record.score for key, record in records.items()}
    critical = {key: record.critical_failed for key, record in records.items()}
    return scores, critical
