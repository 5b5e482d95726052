"""The learner's own workspace: ``work/``, a git-ignored copy of ``exercises/``.

Learners never edit the tracked notebooks in ``exercises/``: ``make generate``, ``f0 stale``
and a ``git pull`` of a course update rewrite those. ``f0 start`` (run by ``make lab``) copies
each released file into ``work/`` *only where that file does not exist yet*, so a new module
arrives with a course update while the learner's answers stay as they are. Nothing else ever
writes to ``work/`` except ``f0 reset MODULE EXERCISE``, which puts one exercise's starting
code back (after asking).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from academy.errors import UsageError
from academy.manifest import Course, Exercise, Module

__all__ = ["WORK_DIR", "ResetPlan", "Workspace"]

WORK_DIR = "work"
SKIPPED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")


@dataclass
class ResetPlan:
    """What ``f0 reset`` will do to one exercise of the workspace notebook."""

    module: Module
    exercise: Exercise
    path: Path
    # grade ids of the cells put back (None: a solution cell without one)
    restored: list[str | None] = field(default_factory=list)
    notebook: nbformat.NotebookNode | None = None

    @property
    def changes(self) -> bool:
        return bool(self.restored)


class Workspace:
    """``work/`` of one course checkout."""

    def __init__(self, course: Course) -> None:
        self.course = course
        self.root = course.root / WORK_DIR

    def notebook(self, module: Module) -> Path:
        return self.root / module.id / module.notebook

    def start(self) -> list[Path]:
        """Copy every released file that the workspace does not have yet; returns the new
        files. Existing files, edited or not, are never touched."""
        copied = []
        for module in self.course.modules:
            released = self.course.release_notebook(module).parent
            if not released.is_dir():
                continue
            ignored = SKIPPED(str(released), [p.name for p in released.iterdir()])
            for source in sorted(released.rglob("*")):
                relative = source.relative_to(released)
                if not source.is_file() or source.is_symlink():
                    continue
                if any(part in ignored or part.endswith(".pyc") for part in relative.parts):
                    continue
                target = self.root / module.id / relative
                if target.exists() or target.is_symlink():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                copied.append(target)
        return copied

    def plan_reset(self, module: Module, exercise: Exercise) -> ResetPlan:
        """The exercise's solution cells as released, put back into the workspace notebook.

        An exercise's cells are those after the previous exercise's grade cell, up to its own
        grade cell; only its solution cells (the learner's code) are restored.
        """
        path = self.notebook(module)
        released_path = self.course.release_notebook(module)
        if not path.is_file():
            raise UsageError(f"{path} does not exist: run `f0 start` to make your workspace")
        released = _read(released_path)
        mine = _read(path)
        starting = _solution_cells(released, exercise)
        plan = ResetPlan(module, exercise, path)
        if not starting:
            raise UsageError(f"{released_path}: exercise {exercise.id} has no solution cell")
        by_id = {_grade_id(c): c for c in mine.cells if _grade_id(c)}
        anchor = next((c for c in mine.cells if _grade_id(c) == exercise.grade_cell), None)
        for cell in starting:
            grade_id = _grade_id(cell)
            current = by_id.get(grade_id)
            if current is not None:
                if current.source == cell.source:
                    continue
                current.source = cell.source
                current.outputs = []
                current.execution_count = None
            else:
                fresh = nbformat.from_dict(dict(cell))
                at = mine.cells.index(anchor) if anchor is not None else len(mine.cells)
                mine.cells.insert(at, fresh)
            plan.restored.append(grade_id)
        plan.notebook = mine
        return plan

    def reset(self, plan: ResetPlan) -> None:
        if plan.notebook is not None and plan.changes:
            nbformat.write(plan.notebook, plan.path)


def _read(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not a readable notebook ({reason})") from exc


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _solution_cells(nb: nbformat.NotebookNode, exercise: Exercise) -> list:
    region: list = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            if meta.get("grade_id") == exercise.grade_cell:
                return [c for c in region if c.metadata.get("nbgrader", {}).get("solution")]
            region = []
        else:
            region.append(cell)
    return []
