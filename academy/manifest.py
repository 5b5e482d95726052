"""The course manifest (``course.yaml``): the single source of truth for the course.

Module ids and titles, notebook paths, graded exercises with their points, grade cells and
hints, certification levels and pass thresholds all live there. Generation, checks,
grading, certificates and the learner's ``f0`` tool read it through this module, so a
course change is one edit in one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["Course", "Exercise", "Level", "ManifestError", "Module", "find_course_root", "load"]

MANIFEST_NAME = "course.yaml"

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["course_id", "title", "modules", "levels"],
    "additionalProperties": False,
    "properties": {
        "course_id": {"type": "string", "pattern": "^[a-z0-9-]+$"},
        "title": {"type": "string"},
        "pass_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "modules": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "number", "title", "notebook", "suite", "exercises"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9_]+$"},
                    "number": {"type": "integer", "minimum": 1},
                    "title": {"type": "string"},
                    "notebook": {"type": "string", "pattern": "^[a-z0-9_]+\\.ipynb$"},
                    "suite": {"type": "string"},
                    "pass_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    "exercises": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["id", "title", "grade_cell", "points", "hints"],
                            "additionalProperties": False,
                            "properties": {
                                "id": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$"},
                                "title": {"type": "string"},
                                "grade_cell": {"type": "string", "pattern": "^[a-z0-9_]+$"},
                                "points": {"type": "number", "exclusiveMinimum": 0},
                                "hints": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
        "levels": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "title", "modules"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "requires": {"type": "string"},
                    "modules": {"type": "array", "items": {"type": "integer"}},
                },
            },
        },
    },
}


class ManifestError(ValueError):
    """``course.yaml`` is missing or inconsistent; the message says where."""


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    grade_cell: str
    points: float
    hints: tuple[str, ...]


@dataclass(frozen=True)
class Module:
    id: str
    number: int
    title: str
    notebook: str
    suite: str
    pass_fraction: float
    exercises: tuple[Exercise, ...]

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def notebook_stem(self) -> str:
        return self.notebook.removesuffix(".ipynb")

    def exercise(self, exercise_id: str) -> Exercise:
        for exercise in self.exercises:
            if exercise.id == exercise_id:
                return exercise
        known = ", ".join(e.id for e in self.exercises)
        raise ManifestError(f"module {self.id} has no exercise {exercise_id!r} (it has {known})")

    def by_grade_cell(self) -> dict[str, Exercise]:
        return {e.grade_cell: e for e in self.exercises}


@dataclass(frozen=True)
class Level:
    id: str
    title: str
    modules: tuple[int, ...]
    requires: str | None = None


@dataclass(frozen=True)
class Course:
    root: Path
    course_id: str
    title: str
    modules: tuple[Module, ...]
    levels: tuple[Level, ...] = field(default=())

    def module(self, key: str | int) -> Module:
        """A module by id (``module1``), number (``1`` or ``"1"``)."""
        for module in self.modules:
            if key in (module.id, module.number, str(module.number)):
                return module
        known = ", ".join(m.id for m in self.modules)
        raise ManifestError(f"no module {key!r} in {MANIFEST_NAME} (modules: {known})")

    def source_notebook(self, module: Module) -> Path:
        return self.root / "curriculum" / module.id / module.notebook

    def release_notebook(self, module: Module) -> Path:
        return self.root / "exercises" / module.id / module.notebook

    def solution_notebook(self, module: Module) -> Path:
        return self.root / "solutions" / module.id / module.notebook

    def suite_path(self, module: Module) -> Path:
        return self.root / module.suite


def find_course_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds ``course.yaml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MANIFEST_NAME).is_file():
            return folder
    raise ManifestError(f"no {MANIFEST_NAME} in {here} or any folder above it")


@cache
def load(root: Path | None = None) -> Course:
    """Read and validate ``course.yaml``; every problem is reported with its location."""
    root = find_course_root(root)
    path = root / MANIFEST_NAME
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(raw), key=str)
    if errors:
        lines = [
            f"  - at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
        ]
        raise ManifestError(f"{path}: {len(errors)} problem(s)\n" + "\n".join(lines))
    default_fraction = raw.get("pass_fraction", 0.8)
    modules = tuple(
        Module(
            id=m["id"],
            number=m["number"],
            title=m["title"],
            notebook=m["notebook"],
            suite=m["suite"],
            pass_fraction=m.get("pass_fraction", default_fraction),
            exercises=tuple(
                Exercise(e["id"], e["title"], e["grade_cell"], e["points"], tuple(e["hints"]))
                for e in m["exercises"]
            ),
        )
        for m in raw["modules"]
    )
    levels = tuple(
        Level(lv["id"], lv["title"], tuple(lv["modules"]), lv.get("requires"))
        for lv in raw["levels"]
    )
    course = Course(root, raw["course_id"], raw["title"], modules, levels)
    _check_unique(path, course)
    return course


def _check_unique(path: Path, course: Course) -> None:
    problems = []
    for label, values in (
        ("module id", [m.id for m in course.modules]),
        ("module number", [m.number for m in course.modules]),
        ("level id", [lv.id for lv in course.levels]),
    ):
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            problems.append(f"duplicate {label}: {', '.join(dupes)}")
    for module in course.modules:
        for label, values in (
            ("exercise id", [e.id for e in module.exercises]),
            ("grade cell", [e.grade_cell for e in module.exercises]),
        ):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                problems.append(f"module {module.id}: duplicate {label}: {', '.join(dupes)}")
    level_ids = {lv.id for lv in course.levels}
    for level in course.levels:
        if level.requires and level.requires not in level_ids:
            problems.append(f"level {level.id} requires unknown level {level.requires!r}")
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
