"""The course's reference solutions, and released notebooks with them filled in.

Tests build submissions from these (``tests/course_tools.py``), and mutation testing swaps one
solution cell for a mutant (``academy.course.mutation``).
"""

from __future__ import annotations

from typing import Any

import nbformat

from academy.manifest import Course, Module

__all__ = ["reference_submission", "solution_cells"]


def solution_cells(course: Course, module: Module) -> dict[str, str]:
    """The reference source of every solution cell, by grade id, from curriculum/."""
    nb = nbformat.read(course.source_notebook(module), as_version=4)
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }


def reference_submission(
    course: Course,
    module: Module,
    replace: dict[str, str] | None = None,
    unsolved: tuple[str, ...] = (),
) -> Any:
    """The released notebook with the reference solutions filled in.

    ``replace`` swaps a solution cell's source for another; cells in ``unsolved`` keep
    the released stub.
    """
    replace = replace or {}
    nb = nbformat.read(course.release_notebook(module), as_version=4)
    solutions = solution_cells(course, module)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replace:
            cell.source = replace[grade_id]
        elif grade_id in solutions and grade_id not in unsolved:
            cell.source = solutions[grade_id]
    return nb
