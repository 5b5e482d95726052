"""Certification levels, decided from module scores and the manifest alone.

A level is reached when every module it lists, and every module of the level it requires,
is in the manifest, scores at least ``pass_fraction * points`` **and** failed no critical
case (``@case(..., critical=True)``: a check whose failure means the component is unsafe or
not what the exercise is about; see docs/critical-cases.md). Scores keep their partial
credit; a critical failure only blocks the module for certification. A level that lists a
module the manifest does not have yet is *not available yet*: it is never awarded, whatever
the scores, so adding modules to ``course.yaml`` is what opens the higher levels.
The same rules serve the learner's ``f0 progress``/``f0 certify`` and the instructor's
certificates from the gradebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from academy.manifest import Course, Level, ManifestError, Module

__all__ = [
    "LevelRules",
    "LevelState",
    "LevelStatus",
    "ModuleStanding",
    "blocking_words",
    "pass_mark",
    "passes",
    "reaches_mark",
]

TOLERANCE = 1e-9


def pass_mark(module: Module) -> float:
    return round(module.pass_fraction * module.points, 6)


def reaches_mark(module: Module, score: float | None) -> bool:
    """The score alone reaches the pass mark (critical cases aside)."""
    return score is not None and score + TOLERANCE >= pass_mark(module)


def passes(module: Module, score: float | None, critical_failed: Sequence[str] = ()) -> bool:
    """Passed for certification: the pass mark reached and no critical case failed."""
    return reaches_mark(module, score) and not critical_failed


def blocking_words(critical_failed: Sequence[str]) -> str:
    """The failed critical checks in one sentence, saying that they block the level."""
    count = len(critical_failed)
    noun = "critical check" if count == 1 else "critical checks"
    return (
        f"{count} {noun} failed, which blocks the module (and every level that needs it) "
        "whatever the score: " + "; ".join(critical_failed)
    )


class LevelState(str, Enum):
    REACHED = "reached"
    IN_PROGRESS = "in progress"
    UNAVAILABLE = "not available yet"


@dataclass(frozen=True)
class ModuleStanding:
    """One module against its pass mark (``score`` is None when it was never graded)."""

    module: Module
    score: float | None
    critical_failed: tuple[str, ...] = ()  # "<exercise>: <message>" of each failed critical case

    @property
    def passed(self) -> bool:
        return passes(self.module, self.score, self.critical_failed)

    @property
    def blocked(self) -> bool:
        """The score reaches the pass mark but a critical case failed."""
        return reaches_mark(self.module, self.score) and bool(self.critical_failed)

    @property
    def pass_mark(self) -> float:
        return pass_mark(self.module)

    def shortfall(self) -> str:
        """What is missing, in words, or '' when the module passes."""
        label = f"module {self.module.number}"
        if self.score is None:
            return f"{label}: not graded yet (needs {self.pass_mark:g} / {self.module.points:g})"
        if self.passed:
            return ""
        if self.blocked:
            return (
                f"{label}: {self.score:g} / {self.module.points:g} reaches the pass mark, but "
                + blocking_words(self.critical_failed)
            )
        text = f"{label}: {self.score:g} / {self.module.points:g}, needs {self.pass_mark:g}"
        if self.critical_failed:
            count = len(self.critical_failed)
            text += f" and no failed critical check ({count} failed)"
        return text


@dataclass(frozen=True)
class LevelStatus:
    level: Level
    state: LevelState
    modules: tuple[ModuleStanding, ...]  # every module the level needs, its requirements' too
    absent: tuple[int, ...]  # module numbers the manifest does not have yet

    @property
    def reached(self) -> bool:
        return self.state is LevelState.REACHED

    def missing(self) -> list[str]:
        """Why the level is not reached, one line per reason."""
        if self.state is LevelState.UNAVAILABLE:
            numbers = ", ".join(map(str, self.absent))
            return [f"module(s) {numbers} are not in the course yet"]
        return [s.shortfall() for s in self.modules if not s.passed]


class LevelRules:
    """Decide every level of a course from a mapping of module id to score."""

    def __init__(self, course: Course) -> None:
        self.course = course
        self._by_id = {level.id: level for level in course.levels}
        self._by_number = {m.number: m for m in course.modules}

    def module_numbers(self, level: Level) -> tuple[int, ...]:
        """The level's modules and, first, those of the levels it requires (in order)."""
        chain: list[Level] = []
        current: Level | None = level
        while current is not None:
            if current in chain:
                names = " -> ".join(lv.id for lv in [*chain, current])
                raise ManifestError(f"course.yaml: levels require each other in a cycle: {names}")
            chain.append(current)
            current = self._by_id[current.requires] if current.requires else None
        numbers: list[int] = []
        for lv in reversed(chain):
            numbers += [n for n in lv.modules if n not in numbers]
        return tuple(numbers)

    def status(
        self,
        level: Level,
        scores: Mapping[str, float],
        critical: Mapping[str, Sequence[str]] | None = None,
    ) -> LevelStatus:
        """``critical`` maps a module id to its failed critical cases (none when absent)."""
        critical = critical or {}
        numbers = self.module_numbers(level)
        absent = tuple(n for n in numbers if n not in self._by_number)
        standings = tuple(
            ModuleStanding(
                self._by_number[n],
                scores.get(self._by_number[n].id),
                tuple(critical.get(self._by_number[n].id, ())),
            )
            for n in numbers
            if n in self._by_number
        )
        if absent:
            state = LevelState.UNAVAILABLE
        elif all(s.passed for s in standings):
            state = LevelState.REACHED
        else:
            state = LevelState.IN_PROGRESS
        return LevelStatus(level, state, standings, absent)

    def statuses(
        self, scores: Mapping[str, float], critical: Mapping[str, Sequence[str]] | None = None
    ) -> list[LevelStatus]:
        return [self.status(level, scores, critical) for level in self.course.levels]

    def highest(
        self, scores: Mapping[str, float], critical: Mapping[str, Sequence[str]] | None = None
    ) -> LevelStatus | None:
        """The reached level that needs the most modules (None when no level is reached)."""
        reached = [s for s in self.statuses(scores, critical) if s.reached]
        return max(reached, key=lambda s: len(s.modules), default=None)

    def next_level(
        self, scores: Mapping[str, float], critical: Mapping[str, Sequence[str]] | None = None
    ) -> LevelStatus | None:
        """The first level in manifest order that is not reached yet."""
        return next((s for s in self.statuses(scores, critical) if not s.reached), None)
