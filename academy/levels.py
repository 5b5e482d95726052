"""Certification levels, decided from module scores and the manifest alone.

A level is reached when every module it lists, and every module of the level it requires,
is in the manifest and scores at least ``pass_fraction * points``. A level that lists a
module the manifest does not have yet is *not available yet*: it is never awarded, whatever
the scores, so adding modules to ``course.yaml`` is what opens the higher levels.
The same rules serve the learner's ``f0 progress``/``f0 certify`` and the instructor's
certificates from the gradebook.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from academy.manifest import Course, Level, ManifestError, Module

__all__ = ["LevelRules", "LevelState", "LevelStatus", "ModuleStanding", "pass_mark", "passes"]

TOLERANCE = 1e-9


def pass_mark(module: Module) -> float:
    return round(module.pass_fraction * module.points, 6)


def passes(module: Module, score: float | None) -> bool:
    return score is not None and score + TOLERANCE >= pass_mark(module)


class LevelState(str, Enum):
    REACHED = "reached"
    IN_PROGRESS = "in progress"
    UNAVAILABLE = "not available yet"


@dataclass(frozen=True)
class ModuleStanding:
    """One module against its pass mark (``score`` is None when it was never graded)."""

    module: Module
    score: float | None

    @property
    def passed(self) -> bool:
        return passes(self.module, self.score)

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
        return f"{label}: {self.score:g} / {self.module.points:g}, needs {self.pass_mark:g}"


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

    def status(self, level: Level, scores: Mapping[str, float]) -> LevelStatus:
        numbers = self.module_numbers(level)
        absent = tuple(n for n in numbers if n not in self._by_number)
        standings = tuple(
            ModuleStanding(self._by_number[n], scores.get(self._by_number[n].id))
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

    def statuses(self, scores: Mapping[str, float]) -> list[LevelStatus]:
        return [self.status(level, scores) for level in self.course.levels]

    def highest(self, scores: Mapping[str, float]) -> LevelStatus | None:
        """The reached level that needs the most modules (None when no level is reached)."""
        reached = [s for s in self.statuses(scores) if s.reached]
        return max(reached, key=lambda s: len(s.modules), default=None)

    def next_level(self, scores: Mapping[str, float]) -> LevelStatus | None:
        """The first level in manifest order that is not reached yet."""
        return next((s for s in self.statuses(scores) if not s.reached), None)
