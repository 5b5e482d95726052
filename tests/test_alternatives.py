"""Fairness, kept as a test: correct implementations written from the released notebooks alone.

Each ``tests/alternatives/<module>.yaml`` holds solution cells (``cells: {grade_id: source}``)
written by someone who had only ``exercises/``, the README and ``framework0/``, never a hidden
suite, in another style than the reference. Put into the released notebook, each must get
full marks from the hidden suite and pass the notebook's own visible tests. A case that fails
an alternative is either unfair (fix the case) or reveals an unstated requirement (fix the
notebook's words).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from course_tools import course, submission

from academy.grading.suite_runner import run_hidden_suite

COURSE = course()
ALTERNATIVES = Path(__file__).parent / "alternatives"
WITH_ALTERNATIVE = [m for m in COURSE.modules if (ALTERNATIVES / f"{m.id}.yaml").is_file()]
VISIBLE_TAG = "visible-tests"


def alternative(module) -> dict[str, str]:
    data = yaml.safe_load((ALTERNATIVES / f"{module.id}.yaml").read_text(encoding="utf-8"))
    assert data.get("module") in (None, module.id)
    return data["cells"]


def test_every_module_has_an_alternative():
    missing = [m.id for m in COURSE.modules if m not in WITH_ALTERNATIVE]
    assert missing == [], f"no tests/alternatives/<module>.yaml for {missing}"


def test_alternatives_name_only_solution_cells_of_their_notebook():
    import nbformat

    for module in WITH_ALTERNATIVE:
        nb = nbformat.read(COURSE.release_notebook(module), as_version=4)
        solutions = {
            c.metadata["nbgrader"]["grade_id"]
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        cells = alternative(module)
        assert set(cells) == solutions, (module.id, sorted(set(cells) ^ solutions))


@pytest.mark.slow
@pytest.mark.parametrize("module", WITH_ALTERNATIVE, ids=lambda m: m.id)
def test_an_alternative_gets_full_marks(module):
    report = run_hidden_suite(
        COURSE, module, submission(COURSE, module, replace=alternative(module))
    )
    failed = [
        (c.name, c.message, c.detail)
        for r in report.exercises.values()
        for c in r.cases
        if not c.passed
    ]
    assert failed == [], failed
    assert report.score == module.points and not report.flagged


@pytest.mark.slow
@pytest.mark.parametrize("module", WITH_ALTERNATIVE, ids=lambda m: m.id)
def test_an_alternative_passes_the_visible_tests(module, tmp_path):
    """The notebook, run top to bottom with the alternative in it: no visible-test cell (and
    no solution cell) shows an error. Grade cells are emptied: they call ``check_exercise``,
    which grades the saved file with the hidden suite (tested above)."""
    from nbclient import NotebookClient

    # A copy of the released folder: some notebooks read the files beside them.
    folder = tmp_path / module.id
    shutil.copytree(COURSE.release_notebook(module).parent, folder)

    nb = submission(COURSE, module, replace=alternative(module))
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            cell.source = "# grade cell: graded by the hidden suite in this test file"
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    ).execute()
    errors = []
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        visible = VISIBLE_TAG in meta.get("tags", [])
        solution = meta.get("nbgrader", {}).get("solution")
        if cell.cell_type != "code" or not (visible or solution):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                grade_id = meta.get("nbgrader", {}).get("grade_id")
                errors.append(f"{grade_id}: {output['ename']}: {output['evalue']}")
    assert errors == [], errors
