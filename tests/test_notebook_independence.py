"""Every exercise and its visible tests work after running only the setup cells, in any order.

A learner who opens a notebook, runs the setup cells (tagged ``setup``) and jumps to an
exercise must not meet a NameError because a demo cell they skipped imported a module or
defined a helper. So each module's notebook, with the reference solutions, is run as: the
setup cells, every solution cell, then the visible-test cells in reverse order, with no demo
cell at all; no cell may raise. Run in both orders, so that no visible-test cell relies on
a name that another one (earlier or later) defines.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest
from course_tools import course, submission

COURSE = course()


def tagged(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


@pytest.mark.slow
@pytest.mark.parametrize("order", ["forward", "reverse"])
@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_exercises_need_only_the_setup_cells(module, order, tmp_path):
    from nbclient import NotebookClient

    # A copy of the released folder: some notebooks read the files beside them.
    folder = tmp_path / module.id
    shutil.copytree(COURSE.release_notebook(module).parent, folder)

    full = submission(COURSE, module)
    setup = [c for c in full.cells if c.cell_type == "code" and tagged(c, "setup")]
    solutions = [
        c
        for c in full.cells
        if c.cell_type == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")
    ]
    visible = [c for c in full.cells if c.cell_type == "code" and tagged(c, "visible-tests")]
    assert setup and visible
    nb = nbformat.v4.new_notebook(metadata=full.metadata)
    nb.cells = [nbformat.v4.new_code_cell(c.source, metadata=c.metadata) for c in setup]
    nb.cells += [nbformat.v4.new_code_cell(c.source, metadata=c.metadata) for c in solutions]
    nb.cells += [
        nbformat.v4.new_code_cell(c.source, metadata=c.metadata)
        for c in (visible[::-1] if order == "reverse" else visible)
    ]
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    ).execute()
    errors = [
        f"{c.metadata.get('nbgrader', {}).get('grade_id')}: {o['ename']}: {o['evalue']}"
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors == [], errors
