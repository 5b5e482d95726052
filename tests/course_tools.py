"""Helpers for tests that build learner submissions from the course's own notebooks."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import yaml

from academy import manifest
from academy.build import tool_env
from academy.manifest import Course, Module

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = Path(__file__).parent / "mutants"


def course() -> Course:
    return manifest.load(ROOT)


def solution_sources(course: Course, module: Module) -> dict[str, str]:
    """The reference solution of every solution cell, by grade_id, from curriculum/."""
    nb = nbformat.read(course.source_notebook(module), as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }


def submission(
    course: Course,
    module: Module,
    replace: dict[str, str] | None = None,
    unsolved: tuple[str, ...] = (),
) -> Any:
    """The released notebook with the reference solutions filled in.

    ``replace`` swaps a solution cell's source for another; cells in ``unsolved`` keep
    the released stub.
    """
    nb = nbformat.read(course.release_notebook(module), as_version=4)
    solutions = solution_sources(course, module)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in (replace or {}):
            cell.source = replace[grade_id]
        elif grade_id in solutions and grade_id not in unsolved:
            cell.source = solutions[grade_id]
    return nb


def mutants(module: Module) -> list[dict[str, Any]]:
    """Known-wrong implementations: each a patch of the reference solution (data, not code)."""
    return yaml.safe_load((MUTANTS / f"{module.id}.yaml").read_text(encoding="utf-8"))


def apply_mutant(course: Course, module: Module, mutant: dict[str, Any]) -> Any:
    solutions = solution_sources(course, module)
    replace = {}
    for patch in mutant["patches"]:
        source = replace.get(patch["cell"], solutions[patch["cell"]])
        count = source.count(patch["old"])
        if count != 1:
            raise AssertionError(
                f"mutant {mutant['id']}: the text to replace occurs {count} "
                f"times in {patch['cell']} (the reference changed?)"
            )
        replace[patch["cell"]] = source.replace(patch["old"], patch["new"])
    return submission(course, module, replace=replace)


def run(
    command: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` with this environment's bin folder first on PATH (plus ``env``)."""
    return subprocess.run(
        command, cwd=cwd, env=tool_env(env), capture_output=True, text=True, timeout=timeout
    )


def deep_copy(nb: Any) -> Any:
    return copy.deepcopy(nb)
