"""CheckCellMetadataCompiled (academy/grading/cellmetadata.py) accepts and rejects exactly the
notebooks nbgrader's CheckCellMetadata does, with the same error, while checking nbgrader's
schema once per process instead of on every cell."""

from __future__ import annotations

import copy

import jsonschema
import nbformat
import pytest
from course_tools import course, submission
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import CheckCellMetadata

from academy.grading.cellmetadata import CheckCellMetadataCompiled, CompiledMetadataValidator

COURSE = course()
MODULE = COURSE.module("module1")


def outcome(validator_class, nb):
    """('ok', '') or (error type, message) of validating ``nb``."""
    try:
        validator_class().validate_nb(copy.deepcopy(nb))
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return type(exc).__name__, str(exc)
    return "ok", ""


def grade_cell(**meta):
    cell = nbformat.v4.new_code_cell("x = 1")
    base = {"schema_version": 3, "grade": True, "solution": False, "locked": True}
    base.update(grade_id="g1", points=1)
    base.update(meta)
    cell.metadata["nbgrader"] = {k: v for k, v in base.items() if v is not DROP}
    return cell


DROP = object()


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


CASES = {
    "released notebook": nbformat.read(COURSE.release_notebook(MODULE), as_version=4),
    "a learner's submission": submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)),
    "no nbgrader cells": notebook(nbformat.v4.new_code_cell("1")),
    "valid grade cell": notebook(grade_cell()),
    "points as text": notebook(grade_cell(points="five")),
    "negative points": notebook(grade_cell(points=-1)),
    "no grade id": notebook(grade_cell(grade_id=DROP)),
    "empty grade id": notebook(grade_cell(grade_id="")),
    "grade id with a space": notebook(grade_cell(grade_id="a b")),
    "no points": notebook(grade_cell(points=DROP)),
    "schema too old": notebook(grade_cell(schema_version=2)),
    "schema too new": notebook(grade_cell(schema_version=4)),
    "unknown key": notebook(grade_cell(extra="x")),
    "missing required key": notebook(grade_cell(locked=DROP)),
    "short checksum": notebook(grade_cell(checksum="abc")),
    "duplicate grade ids": notebook(grade_cell(), grade_cell()),
    "wrong cell type name": notebook(grade_cell(cell_type="python")),
    "markdown grade cell, not a solution": notebook(
        nbformat.v4.new_markdown_cell("x", metadata={"nbgrader": grade_cell().metadata.nbgrader})
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_the_compiled_validator_agrees_with_nbgraders(name):
    nb = CASES[name]
    expected = outcome(MetadataValidator, nb)
    assert outcome(CompiledMetadataValidator, nb) == expected
    nbgrader_step = _step_outcome(CheckCellMetadata(), nb)
    assert _step_outcome(CheckCellMetadataCompiled(), nb) == nbgrader_step


def test_the_cases_cover_acceptance_and_every_kind_of_rejection():
    outcomes = {name: outcome(MetadataValidator, nb)[0] for name, nb in CASES.items()}
    assert outcomes["released notebook"] == outcomes["valid grade cell"] == "ok"
    assert {"ValidationError", "SchemaTooOldError", "SchemaTooNewError"} <= set(outcomes.values())
    assert sum(o != "ok" for o in outcomes.values()) >= 12


def _step_outcome(step, nb):
    try:
        step.preprocess(copy.deepcopy(nb), {})
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return type(exc).__name__, str(exc)
    return "ok", ""


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 5),
    st.floats(allow_nan=False, width=32),
    st.text(max_size=40),
    st.sampled_from(["g_1", "code", "markdown", "0123456789abcdef0123456789abcdef"]),
)
KEYS = st.sampled_from(
    [
        "schema_version",
        "grade",
        "locked",
        "solution",
        "task",
        "grade_id",
        "points",
        "checksum",
        "cell_type",
        "other",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    meta=st.dictionaries(KEYS, VALUES, max_size=10),
    cell_type=st.sampled_from(["code", "markdown"]),
)
def test_any_metadata_gets_the_same_answer_from_both(meta, cell_type):
    meta.setdefault("schema_version", 3)
    new = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    nb = notebook(new("x", metadata={"nbgrader": meta}))
    assert outcome(CompiledMetadataValidator, nb) == outcome(MetadataValidator, nb)


def test_the_schema_itself_is_checked_once(monkeypatch):
    calls = []
    original = jsonschema.Draft4Validator.check_schema.__func__

    def counted(cls, schema, *args, **kwargs):
        calls.append(1)
        return original(cls, schema, *args, **kwargs)

    from academy.grading import cellmetadata

    cellmetadata._COMPILED.clear()
    monkeypatch.setattr(jsonschema.Draft4Validator, "check_schema", classmethod(counted))
    nb = CASES["released notebook"]
    for _ in range(3):
        CompiledMetadataValidator().validate_nb(nb)
    assert len(calls) == 1
    MetadataValidator().validate_nb(nb)  # nbgrader's: once per nbgrader cell
    assert len(calls) > 1 + 3
