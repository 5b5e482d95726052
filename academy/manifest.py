"""The course manifest (``course.yaml``): the single source of truth for the course.

Module ids and titles, notebook paths, graded exercises with their points, grade cells and
hints, certification levels and pass thresholds all live there. Generation, checks,
grading, certificates and the learner's ``f0`` tool read it through this module, so a
course change is one edit in one file.

``suite`` is a module's hidden suite: one pytest file (``autograder/test_module1.py``) or, for a
long one, a folder (``autograder/module8``) holding one ``test_<exercise>_<name>.py`` file per
exercise, in the notebook's order, and ``_support.py`` for what several exercises share
(``suite_files``, ``suite_tests``; docs/authoring.md, section 4).

``issuer`` names who issues the course's certificates and the Ed25519 key they are signed
with: ``key_id`` (the key's ``did:key``) and ``public_key`` (the committed PEM file of the same
key, for verifiers outside this repository). The loader refuses a malformed key id, and a
public key file that is not that key. A ``did:key`` is the public key itself, so a copy of
``course.yaml`` alone (tests, temporary course copies) still knows the course's key.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from academy.errors import ManifestError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "Course",
    "CourseIssuer",
    "Exercise",
    "Level",
    "ManifestError",
    "Module",
    "find_course_root",
    "load",
    "suite_files",
    "suite_support",
    "suite_tests",
]

MANIFEST_NAME = "course.yaml"
SUITE_TESTS = "test_*.py"  # a folder suite's test files: one per exercise
SUITE_SUPPORT = "_support.py"  # a folder suite's shared helpers and fixtures (module _support)
SUITE_SKIP = frozenset(
    {"__pycache__", ".ipynb_checkpoints", ".hypothesis", ".pytest_cache", ".git"}
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["course_id", "title", "modules", "levels"],
    "additionalProperties": False,
    "properties": {
        "course_id": {"type": "string", "pattern": "^[a-z0-9-]+$"},
        "title": {"type": "string"},
        "pass_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "issuer": {
            "type": "object",
            "required": ["name", "key_id", "public_key"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "key_id": {"type": "string", "pattern": "^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+$"},
                "public_key": {"type": "string", "pattern": "^(?!/)(?!.*\\.\\.).+\\.pem$"},
            },
        },
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
                    "suite": {"type": "string", "minLength": 1},  # a .py file or a folder
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
class CourseIssuer:
    """Who issues the course's certificates, and the one key that signs them."""

    name: str
    key_id: str  # the did:key of the course's Ed25519 public key
    public_key: Path  # the committed PEM file of that key

    def key(self) -> Ed25519PublicKey:
        """The course's public key (the loader checked that the PEM file is this key)."""
        from academy.certificates.keys import public_key_from_did

        return public_key_from_did(self.key_id)


@dataclass(frozen=True)
class Course:
    root: Path
    course_id: str
    title: str
    modules: tuple[Module, ...]
    levels: tuple[Level, ...] = field(default=())
    issuer: CourseIssuer | None = None  # None: the course publishes no certificate key

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
        """The module's hidden suite: a pytest file, or a folder of them (``suite_tests``)."""
        return self.root / module.suite

    def suite_files(self, module: Module) -> list[Path]:
        """Every file of the module's hidden suite (what must travel with it, and stay hidden)."""
        return suite_files(self.suite_path(module))

    def suite_tests(self, module: Module) -> list[Path]:
        """The suite's test files, in the notebook's order (what pytest runs)."""
        return suite_tests(self.suite_path(module))


def _notebook_order(path: Path) -> list[int | str]:
    """Sort key: numbers as numbers, so ``test_8_10_x.py`` comes after ``test_8_9_y.py``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def suite_files(suite: Path) -> list[Path]:
    """Every file of a hidden suite, sorted: the file itself, or each regular file under the
    folder (caches and ``.pyc`` files left out; a link or special file is never a suite file).
    Empty when the suite does not exist."""
    if suite.is_file():
        return [suite]
    if not suite.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(suite, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SUITE_SKIP)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.endswith(".pyc") and stat.S_ISREG(os.lstat(path).st_mode):
                found.append(path)
    return found


def suite_tests(suite: Path) -> list[Path]:
    """The test files of a hidden suite: the file itself, or the folder's ``test_*.py`` files
    in the notebook's order (one per exercise). Empty when the suite does not exist.

    A ``conftest.py`` in a folder suite is refused: the grader runs suites with
    ``--noconftest``, so its fixtures would silently be missing; ``_support.py`` is the
    folder's shared module, and its fixtures are loaded (``academy.grading.plugin``).
    """
    if not suite.is_dir():
        return [suite] if suite.is_file() else []
    if (suite / "conftest.py").exists():
        raise ManifestError(
            f"{suite}/conftest.py is never loaded (hidden suites run with --noconftest): "
            f"put shared helpers and fixtures in {SUITE_SUPPORT}"
        )
    tests = [p for p in suite.glob(SUITE_TESTS) if p.is_file() and not p.is_symlink()]
    return sorted(tests, key=_notebook_order)


def suite_support(suite: Path) -> Path | None:
    """A folder suite's ``_support.py``, when it has one."""
    support = suite / SUITE_SUPPORT
    return support if suite.is_dir() and support.is_file() else None


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
    issuer = _issuer(path, raw["issuer"]) if "issuer" in raw else None
    course = Course(root, raw["course_id"], raw["title"], modules, levels, issuer)
    _check_unique(path, course)
    return course


def _issuer(path: Path, raw: dict[str, str]) -> CourseIssuer:
    """``issuer``: an Ed25519 did:key, and a PEM file (when present) holding that key."""
    from academy.certificates.keys import (
        KeyFileError,
        did_key,
        load_public_key,
        public_key_from_did,
    )

    key_id, relative = raw["key_id"], raw["public_key"]
    issuer = CourseIssuer(raw["name"], key_id, path.parent / relative)
    try:
        public_key_from_did(key_id)
    except KeyFileError as exc:
        raise ManifestError(f"{path}: issuer.key_id: {exc}") from exc
    if not issuer.public_key.exists():  # a copy of course.yaml alone: the key id is the key
        return issuer
    try:
        file_id = did_key(load_public_key(issuer.public_key))
    except KeyFileError as exc:
        raise ManifestError(f"{path}: issuer.public_key: {exc}") from exc
    if file_id != key_id:
        raise ManifestError(
            f"{path}: issuer.public_key {relative} is key {file_id}, but issuer.key_id is "
            f"{key_id}; they must name the same key"
        )
    return issuer


def _check_unique(path: Path, course: Course) -> None:
    problems = []
    columns: tuple[tuple[str, Sequence[str | int]], ...] = (
        ("module id", [m.id for m in course.modules]),
        ("module number", [m.number for m in course.modules]),
        ("level id", [lv.id for lv in course.levels]),
    )
    for label, values in columns:
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
