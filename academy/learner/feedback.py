"""What a check says to the learner, in words, shared by ``f0 check``, ``f0 watch`` and the
grade cells (``academy.learner.incell``): one line per exercise with its first failing
behaviour, "not started" for an untouched stub, and what to do next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from academy.manifest import Course, Exercise, Module

__all__ = [
    "CRITICAL_PREFIX",
    "ExerciseLine",
    "failing_behaviours",
    "not_started",
    "solution_cells",
    "summarise",
]

STUB_MARKERS = ("YOUR CODE HERE", "raise NotImplementedError()")


def _meta(cell: Any) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_cells(nb: Any, exercise: Exercise) -> list[Any]:
    """The solution cells of ``exercise``: those after the previous grade cell, up to its own."""
    region: list[Any] = []
    for cell in nb["cells"]:
        meta = _meta(cell)
        if meta.get("grade"):
            if meta.get("grade_id") == exercise.grade_cell:
                return [c for c in region if _meta(c).get("solution")]
            region = []
        else:
            region.append(cell)
    return []


def _source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def not_started(module: Module, nb: Any, released: Any | None) -> set[str]:
    """Exercises whose solution cells are all still the released stubs."""
    out = set()
    for exercise in module.exercises:
        mine = solution_cells(nb, exercise)
        if not mine:
            continue
        stubs = {
            _meta(c).get("grade_id"): _source(c)
            for c in (solution_cells(released, exercise) if released is not None else [])
        }
        if stubs:  # the release at hand (a checkout): untouched means equal to it
            untouched = all(
                _source(c).strip() == stubs.get(_meta(c).get("grade_id"), "").strip() for c in mine
            )
        else:
            untouched = all(all(m in _source(c) for m in STUB_MARKERS) for c in mine)
        if untouched:
            out.add(exercise.id)
    return out


CRITICAL_PREFIX = "CRITICAL (blocks the level): "


def failing_behaviours(result: Any) -> list[str]:
    """Why an exercise lost points, one sentence per failing check: problems first, then
    failed critical checks (marked, as they block the level), then the others."""

    def said(case: Any) -> str:
        return case.cited + (f" ({case.detail})" if case.detail else "")

    failed = [c for c in result.cases if not c.passed]
    return [
        *result.problems,
        *(CRITICAL_PREFIX + said(c) for c in failed if getattr(c, "critical", False)),
        *(said(c) for c in failed if not getattr(c, "critical", False)),
    ]


@dataclass(frozen=True)
class ExerciseLine:
    exercise: Exercise
    score: float
    status: str  # "passed", "failing", "not started"
    first_failure: str
    failures: tuple[str, ...]
    critical: tuple[str, ...] = ()  # the failed critical checks, in words

    def text(self) -> str:
        mark = {"passed": "✓", "failing": "✗", "not started": "·"}[self.status]
        head = f"{mark} {self.exercise.id} {self.exercise.title}: {self.score:g} / "
        head += f"{self.exercise.points:g}"
        if self.status == "not started":
            return head + " (not started)"
        if self.status == "failing":
            if self.critical:
                return f"{head}; ⛔ critical check failed (blocks the level): {self.critical[0]}"
            return f"{head}; first failing: {self.first_failure}"
        return head


def summarise(report: Any, started_not: set[str]) -> list[ExerciseLine]:
    lines = []
    for key, result in report.exercises.items():
        failures = failing_behaviours(result)
        if result.score >= result.exercise.points and not failures:
            status = "passed"
        elif key in started_not:
            status = "not started"
        else:
            status = "failing"
        lines.append(
            ExerciseLine(
                result.exercise,
                result.score,
                status,
                failures[0] if failures else "",
                tuple(failures),
                tuple(
                    c.cited + (f" ({c.detail})" if c.detail else "")
                    for c in getattr(result, "critical_failures", [])
                ),
            )
        )
    return lines


def next_step(course: Course, module: Module, lines: list[ExerciseLine]) -> str:
    """One sentence: what the learner should do now."""
    failing = next((line for line in lines if line.status == "failing"), None)
    if failing is not None:
        return (
            f"Next: fix exercise {failing.exercise.id}; `f0 hint {module.id} "
            f"{failing.exercise.id}` gives a hint."
        )
    fresh = next((line for line in lines if line.status == "not started"), None)
    if fresh is not None:
        return (
            f"Next: start exercise {fresh.exercise.id} ({fresh.exercise.title}); "
            f"`f0 hint {module.id} {fresh.exercise.id}` gives a hint."
        )
    later = [m for m in course.modules if m.number > module.number]
    if later:
        return f"Module {module.number} is complete. Next: module {later[0].number}."
    return f"Module {module.number} is complete. `f0 progress` shows your level."
