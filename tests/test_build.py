"""Generation: exercises/ and solutions/ are derived from curriculum/ and never stale."""

from __future__ import annotations

import nbformat
import pytest
from course_tools import course

from academy import manifest
from academy.build import GENERATE_COMMAND, BuildError, SyncGradeCells, copy_course, stale_files

COURSE = course()


def test_generated_files_are_up_to_date():
    stale = stale_files(COURSE)
    assert not stale, f"stale generated files: {stale}; run `{GENERATE_COMMAND}`"


def test_a_stale_file_is_named(tmp_path):
    copy = manifest.load(copy_course(COURSE, tmp_path))
    module = copy.module("module1")
    for folder in ("exercises", "solutions"):
        (tmp_path / folder / module.id).mkdir(parents=True)
    nb = nbformat.read(COURSE.release_notebook(module), as_version=4)
    nb.cells[0].source += "\nedited by hand"
    nbformat.write(nb, copy.release_notebook(module))
    stale = stale_files(copy, [module.id])  # module 1 only: the whole course is the test above
    assert stale == [
        f"exercises/{module.id}/{module.notebook}",
        f"solutions/{module.id}/{module.notebook} (missing)",
    ]


def test_grade_cell_points_come_from_the_manifest(tmp_path):
    copy = manifest.load(copy_course(COURSE, tmp_path))
    module = copy.module("module1")
    path = copy.source_notebook(module)
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    cell.metadata["nbgrader"]["points"] = 99
    nbformat.write(nb, path)
    SyncGradeCells().sync(copy, module)
    points = next(
        c
        for c in nbformat.read(path, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade")
    ).metadata["nbgrader"]["points"]
    assert points == module.exercises[0].points


def test_a_grade_cell_missing_from_the_manifest_is_refused(tmp_path):
    copy = manifest.load(copy_course(COURSE, tmp_path))
    module = copy.module("module1")
    path = copy.source_notebook(module)
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    cell.metadata["nbgrader"]["grade_id"] = "hidden_stray"
    nbformat.write(nb, path)
    with pytest.raises(BuildError, match="hidden_stray"):
        SyncGradeCells().sync(copy, module)
