"""The learner's latest ``f0 check`` results, kept in ``.f0/progress.json`` in the course root.

``f0 check`` records each module's report here; ``f0 progress``, ``f0 certify`` and the
notebook dashboard read it. Writes are atomic (a killed writer leaves the old file or the
new one, never half of one) and serialised with a lock, so ``f0 watch`` and a manual
``f0 check`` can run side by side.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from academy.errors import ProgressError
from academy.manifest import Course
from framework0.persistence import atomic_write, clean_temp_files

__all__ = ["ModuleRecord", "ProgressError", "ProgressStore", "file_sha256"]

FORMAT = 1


@dataclass(frozen=True)
class ModuleRecord:
    """One module's latest check: what was graded, when, and what it scored."""

    module: str
    score: float
    max_points: float
    exercises: dict[str, float]
    checked_at: str
    notebook: str
    notebook_sha256: str
    flagged: bool = False

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
        )

    def notebook_changed(self, root: Path) -> bool:
        """True when the checked notebook no longer has the bytes that were graded."""
        path = Path(self.notebook)
        path = path if path.is_absolute() else root / path
        return file_sha256(path) != self.notebook_sha256


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

    def records(self) -> dict[str, ModuleRecord]:
        """The latest record of each module that was ever checked (modules no longer in the
        manifest are dropped)."""
        raw = self._read()
        known = {m.id for m in self.course.modules}
        out = {}
        for module_id, item in raw.get("modules", {}).items():
            if module_id not in known:
                continue
            try:
                out[module_id] = ModuleRecord(**item)
            except TypeError as exc:
                raise ProgressError(f"{self.path}: module {module_id}: {exc}") from exc
        return out

    def scores(self) -> dict[str, float]:
        return {key: record.score for key, record in self.records().items()}

    def record(self, entry: ModuleRecord) -> None:
        """Store ``entry`` as its module's latest check."""
        self.folder.mkdir(exist_ok=True)
        with self._locked():
            clean_temp_files(self.folder)
            try:
                raw = self._read()
            except ProgressError:
                raw = {}  # a damaged file is replaced by the new, valid one
            raw["format"] = FORMAT
            raw.setdefault("modules", {})[entry.module] = asdict(entry)
            payload = json.dumps(raw, indent=2, sort_keys=True) + "\n"
            atomic_write(self.path, payload.encode("utf-8"))

    def relative(self, notebook: Path) -> str:
        """The notebook's path relative to the course root when it lies inside it."""
        resolved = notebook.resolve()
        try:
            return str(resolved.relative_to(self.course.root))
        except ValueError:
            return str(resolved)

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProgressError(f"{self.path}: not readable JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ProgressError(f"{self.path}: not a format-{FORMAT} progress file")
        return raw

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; writes stay atomic
            yield
            return
        fd = os.open(self.folder / "progress.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
