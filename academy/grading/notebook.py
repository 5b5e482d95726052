"""Which cells of a submitted notebook are the learner's code."""

from __future__ import annotations

from typing import Any

SETUP_TAG = "setup"


def learner_cells(nb: Any) -> list[dict[str, Any]]:
    """The code to load into the learner's worker, in notebook order.

    Everything the learner could have written runs: solution cells and any cell they added.
    Instructor cells are skipped (demonstrations, visible tests, the hidden-test cells),
    except those tagged ``setup`` (imports and fixtures the solutions rely on). Grade
    cells never run: hidden tests live in the grader, not in the notebook.
    """
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {})
        nbgrader = meta.get("nbgrader", {})
        tags = meta.get("tags", [])
        if nbgrader.get("grade"):
            continue
        if nbgrader.get("locked") and SETUP_TAG not in tags:
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        label = f"cell {index + 1}"
        if nbgrader.get("grade_id"):
            label += f" ({nbgrader['grade_id']})"
        cells.append({"index": index, "label": label, "source": source})
    return cells
