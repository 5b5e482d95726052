"""academy.learner.progress: the learner's check records, written by one process at a time."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

from course_tools import course

from academy import manifest
from academy.learner.progress import ModuleRecord, ProgressStore, level_inputs

COURSE = course()
WRITES = 10  # per process: bounded


def _record(module: str, score: float) -> ModuleRecord:
    return ModuleRecord(module, score, 16, {}, "2026-01-01T00:00:00Z", "n.ipynb", "x")


def _write_many(root: str, module: str) -> None:
    store = ProgressStore(manifest.load(Path(root)))
    for score in range(1, WRITES + 1):
        store.record(_record(module, float(score)))


def test_checks_finishing_together_lose_no_record(tmp_path):
    """Two processes record checks of different modules at once (a dashboard and f0 watch):
    each read-modify-write holds the file lock, so every module's last check is there."""
    shutil.copy(COURSE.root / "course.yaml", tmp_path / "course.yaml")
    ctx = multiprocessing.get_context("fork")
    writers = [
        ctx.Process(target=_write_many, args=(str(tmp_path), module))
        for module in ("module1", "module2", "module3")
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    store = ProgressStore(manifest.load(tmp_path))
    latest = store.latest()
    assert {key: r.score for key, r in latest.items()} == {
        "module1": WRITES,
        "module2": WRITES,
        "module3": WRITES,
    }


def test_level_inputs_are_each_modules_score_and_failed_critical_cases():
    records = {"module1": _record("module1", 12.0), "module2": _record("module2", 3.0)}
    records["module2"] = ModuleRecord(
        "module2", 3.0, 16, {}, "2026-01-01T00:00:00Z", "n.ipynb", "x", False, ("2.1: x",)
    )
    scores, critical = level_inputs(records)
    assert scores == {"module1": 12.0, "module2": 3.0}
    assert critical == {"module1": (), "module2": ("2.1: x",)}
