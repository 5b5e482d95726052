"""The first sanitize step of ``nbgrader autograde``: one learner's file never stops the class.

nbgrader's sanitize steps trust the submitted notebook's nbgrader metadata, and a few of their
failures end the whole ``autograde`` run rather than one submission: a cell copied in Jupyter
keeps its grade id, ``DeduplicateIds`` empties the copy's metadata, and the schema check then
raises ``SchemaTooOldError``, which ``converters/base.py`` turns into a run-ending
``NbGraderException`` (so does any ``schema_version`` other than 3, which a learner can type).
Other broken files fail their own submission with nothing the instructor sees in formgrader,
which lists only notebooks that have a graded file.

``GuardSubmission`` runs before those steps (``c.Autograde.sanitize_preprocessors`` in
``jupyter_config.py``). What it chose, and why:

* **Repair what is innocent, and say so.** Every nbgrader cell is checked against the
  gradebook's record of the released notebook. The first cell carrying a known grade id keeps
  it, with its released settings restored (grade/solution/locked/task, points, schema version
  3), so nothing a learner edits in the metadata reaches nbgrader's checks. A later cell
  repeating that id (a copied solution, test or grade cell), a cell with an id this notebook
  does not have, or nbgrader metadata without an id loses its nbgrader metadata: it becomes an
  ordinary cell the learner added, which the hidden-suite grader already runs as learner code
  and which can earn nothing by itself. Keeping the *first* copy matches reading order and
  nbgrader's own checks; either copy holds the learner's text, so the choice costs nothing.
  The notebook is then graded as usual, flagged in the gradebook, and a "grader's note" cell
  at its end (seen in formgrader and in the feedback) says what was changed.
* **Set aside what cannot be graded, alone, with a reason.** A notebook with more cells than
  ``max_cells``, one whose cells are not the shape nbgrader expects, or another module's
  notebook saved under this module's name (it holds more graded cells of another notebook in
  the gradebook than of this one) is replaced by a stand-in holding one cell: "Not graded:
  <reason>". nbgrader grades the stand-in (every exercise scores 0), so the submission is
  listed in formgrader, flagged, with the reason at the top of its notebook; the reason is
  also every solution cell's automatic comment in the gradebook (prefix ``Not graded:``),
  which is what ``f0 autograde`` reads to report it. The submitted file is never changed.
* **Files nbgrader cannot read** (not JSON, not UTF-8, not a regular file, larger than
  ``max_notebook_mb``) never reach a sanitize step: nbgrader reads the file after it builds
  the steps. So the guard checks the submission's files when nbgrader builds it, records the
  flag and the reason in the gradebook and raises: nbgrader fails that submission alone (its
  per-submission error handling) and goes on. A file over the cap is never read at all.
  Such a submission keeps no graded notebook, so formgrader's lists skip it (they show only
  notebooks with a graded file); the gradebook holds the flag and the reason, and both
  ``nbgrader autograde``'s log and ``f0 autograde``'s summary name it.

Cost: one more parse of each submitted file before nbgrader's own (milliseconds for a course
notebook) and one gradebook query per notebook.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode, from_dict
from nbformat.v4 import new_markdown_cell
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float, Integer

from academy.errors import AcademyError

__all__ = ["NOT_GRADED", "GuardSubmission", "UngradableNotebook", "file_problem"]

NOT_GRADED = "Not graded: "  # prefix of the gradebook comment that carries the reason
SCHEMA_VERSION = 3
MAX_NOTES = 20


class UngradableNotebook(AcademyError):
    """nbgrader cannot read this notebook; raised so that nbgrader fails its submission alone."""


@dataclass(frozen=True)
class KnownCell:
    """A cell of the released notebook, as the gradebook recorded it."""

    name: str
    cell_type: str
    locked: bool
    checksum: str | None
    grade: bool
    solution: bool
    task: bool
    points: float | None

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "cell_type": self.cell_type,
            "grade": self.grade,
            "grade_id": self.name,
            "locked": self.locked,
            "schema_version": SCHEMA_VERSION,
            "solution": self.solution,
            "task": self.task,
        }
        if (self.grade or self.task) and self.points is not None:
            meta["points"] = self.points
        if self.checksum:
            meta["checksum"] = self.checksum
        return meta


class GuardSubmission(NbGraderPreprocessor):
    """Repair copied or foreign nbgrader metadata, or set the notebook aside with a reason.

    See the module docstring for what is repaired, what is set aside, and why.
    """

    max_cells = Integer(
        500,
        help="Most cells a submitted notebook may have; a notebook with more is not graded "
        "(it scores 0, flagged, with the reason in formgrader) and grading goes on (0: no cap).",
    ).tag(config=True)
    max_notebook_mb = Float(
        20.0,
        help="Largest submitted notebook file, in MB; a larger file is never read: its "
        "submission fails alone, flagged, with the reason in the log (0: no cap).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._screen_files_before_nbgrader_reads_them()

    # ------------------------------------------------------------ files nbgrader cannot read
    def _screen_files_before_nbgrader_reads_them(self) -> None:
        """nbgrader builds its sanitize steps for each notebook, then reads the file: check now.

        Only when built by ``nbgrader autograde``'s sanitize pass (the exporter's parent);
        otherwise, e.g. in a test calling ``preprocess``, there is no file to check.
        """
        from nbgrader.converters import Autograde

        converter = getattr(self.parent, "parent", None)
        if not isinstance(converter, Autograde) or not getattr(converter, "_sanitizing", False):
            return
        for path in list(converter.notebooks):
            reason = _screened(path, self.max_notebook_mb)
            if reason is None:
                continue
            try:
                info = converter.init_single_notebook_resources(path)["nbgrader"]
            except Exception:  # noqa: BLE001 - a path nbgrader itself cannot place
                raise UngradableNotebook(f"{path}: {reason}") from None
            with Gradebook(info["db_url"]) as gb:
                _record(gb, info, reason=reason)
            where = f"{info['student']}/{info['assignment']}/{info['notebook']}.ipynb"
            self.log.error("%s NOT GRADED: %s", where, reason)
            raise UngradableNotebook(f"{where}: {reason}")

    # ------------------------------------------------------------ the notebook nbgrader read
    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        where = f"{info['student']}/{info['assignment']}/{info['notebook']}.ipynb"
        notes: list[str] = []
        with Gradebook(info["db_url"]) as gb:
            reason = _shape_problem(nb)
            if reason is None and self.max_cells and len(nb.cells) > self.max_cells:
                reason = (
                    f"it has {len(nb.cells)} cells; the grader takes notebooks of at most "
                    f"{self.max_cells} cells"
                )
            if reason is None:
                try:
                    known = _known_cells(gb, info["notebook"], info["assignment"])
                except MissingEntry:
                    return nb, resources  # not a notebook of this assignment: nbgrader skips it
                present = _grade_ids(nb)
                if present - set(known):
                    reason = _foreign(gb, info, known, nb)
                if reason is None:
                    notes = _repair(nb, known)
            _record(gb, info, reason=reason, flag=bool(notes))
        if reason is not None:
            self.log.error("%s NOT GRADED: %s", where, reason)
            return _stand_in(nb, info, reason), resources
        if notes:
            self.log.warning("%s graded with notes: %s", where, "; ".join(notes))
            shown = notes[:MAX_NOTES]
            if len(notes) > MAX_NOTES:
                shown.append(f"... and {len(notes) - MAX_NOTES} more")
            text = (
                "**Grader's note** (added while grading; a person will look at this "
                "submission):\n\n" + "\n".join(f"- {n}" for n in shown)
            )
            nb.cells.append(_markdown(nb, text))
        return nb, resources


# ---------------------------------------------------------------- checks
_SCREENED: dict[tuple[str, int, int, float], str | None] = {}


def _screened(path: str, max_mb: float) -> str | None:
    """``file_problem``, once per file version (nbgrader builds the steps once per notebook)."""
    try:
        info = os.lstat(path)
        key = (os.path.abspath(path), info.st_size, info.st_mtime_ns, max_mb)
    except OSError:
        return file_problem(path, max_mb)
    if key not in _SCREENED:
        _SCREENED[key] = file_problem(path, max_mb)
    return _SCREENED[key]


def file_problem(path: str, max_mb: float = 0) -> str | None:
    """Why nbgrader could not read the notebook file at ``path``, in one line; None if it can.

    The file is opened without following a link and without blocking on a FIFO, and only a
    regular file within ``max_mb`` (0: any size) is read.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "it is a symbolic link, not a notebook file"
        return f"the file cannot be opened ({exc.strerror})"
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "it is not a regular file"
        if max_mb and info.st_size > max_mb * 1_000_000:
            return (
                f"the file is {info.st_size / 1_000_000:.1f} MB; the grader reads notebooks "
                f"of at most {max_mb:g} MB"
            )
        try:
            data = fh.read(int(max_mb * 1_000_000) + 1 if max_mb else -1)
        except OSError as exc:
            return f"the file cannot be read ({exc.strerror})"
    if max_mb and len(data) > max_mb * 1_000_000:
        return f"the file grew past {max_mb:g} MB while it was read"
    try:
        text = data.decode("utf-8")  # as nbconvert opens it
    except UnicodeDecodeError:
        return "the file is not UTF-8 text (not a notebook?)"
    try:
        json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        column = getattr(exc, "colno", None)
        at = f" (line {line}, column {column})" if line else ""
        return f"the file is not valid JSON{at}: damaged, or not a notebook"
    except RecursionError:
        return "the file's JSON is nested too deeply to be a notebook"
    try:
        nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - whatever nbformat cannot read, nbgrader cannot
        return f"nbformat cannot read it as a notebook ({type(exc).__name__}: {_one_line(exc)})"
    return None


def _shape_problem(nb: Any) -> str | None:
    """Put trivially fixable cell fields right; say why not when the shape is beyond that."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return "the notebook has no list of cells"
    if not isinstance(nb.get("metadata", {}), dict):
        return "the notebook's metadata is not a JSON object"
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            return f"cell {number} is not a JSON object"
        kind = cell.get("cell_type")
        if kind not in ("code", "markdown", "raw"):
            return f"cell {number} has no valid cell type"
        metadata = cell.get("metadata", {})
        if not isinstance(metadata, dict):
            return f"the metadata of cell {number} is not a JSON object"
        cell["metadata"] = from_dict(metadata)
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            return f"the source of cell {number} is not text"
        cell["source"] = source
        if kind == "code":
            if not isinstance(cell.get("outputs", []), list):
                return f"the outputs of cell {number} are not a list"
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    return None


def _grade_ids(nb: NotebookNode) -> set[str]:
    ids = set()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
            ids.add(meta["grade_id"])
    return ids


def _known_cells(gb: Gradebook, notebook: str, assignment: str) -> dict[str, KnownCell]:
    record = gb.find_notebook(notebook, assignment)
    grade = {c.name: c.max_score for c in record.grade_cells}
    task = {c.name: c.max_score for c in record.task_cells}
    solution = {c.name for c in record.solution_cells}
    return {
        c.name: KnownCell(
            name=c.name,
            cell_type=c.cell_type,
            locked=bool(c.locked),
            checksum=c.checksum,
            grade=c.name in grade,
            solution=c.name in solution,
            task=c.name in task,
            points=grade.get(c.name, task.get(c.name)),
        )
        for c in record.source_cells
    }


def _graded(known: dict[str, KnownCell]) -> set[str]:
    return {k for k, c in known.items() if c.grade or c.solution or c.task}


def _foreign(
    gb: Gradebook, info: dict[str, Any], known: dict[str, KnownCell], nb: NotebookNode
) -> str | None:
    """A reason when this is another notebook: it holds more graded cells of another notebook
    in the gradebook than of this one, or none of this one's and several it cannot place."""
    present = _grade_ids(nb)
    this = info["assignment"]
    own = len(present & _graded(known))
    best: tuple[int, str, str] = (0, "", "")
    for assignment in gb.assignments:
        for notebook in assignment.notebooks:
            if (assignment.name, notebook.name) == (this, info["notebook"]):
                continue
            theirs = {c.name for c in notebook.grade_cells}
            theirs |= {c.name for c in notebook.solution_cells}
            theirs |= {c.name for c in notebook.task_cells}
            count = len((present & theirs) - set(known))
            if 2 * count >= len(theirs):  # most of that notebook, not one stray copied cell
                best = max(best, (count, assignment.name, notebook.name))
    count, other, name = best
    saved_as = f"another module's notebook saved as {info['notebook']}.ipynb?"
    if count > own:
        return (
            f"this is not {this}'s notebook: it holds {count} graded cells of {other} "
            f"({name}.ipynb) and {own} of {this} ({saved_as})"
        )
    if own:
        return None
    claimed = set()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if isinstance(meta, dict) and (meta.get("grade") or meta.get("solution")):
            if isinstance(meta.get("grade_id"), str) and meta["grade_id"] not in known:
                claimed.add(meta["grade_id"])
    if len(claimed) < 2:
        return None
    other = _module_of(claimed, this)
    return (
        f"this is not {this}'s notebook: it holds none of {this}'s graded cells and "
        f"{len(claimed)} of {other or 'another notebook'} ({saved_as})"
    )


def _module_of(grade_ids: set[str], this: str) -> str:
    """The course.yaml module whose grade cells these are, when the course says so."""
    try:
        from academy import manifest

        course = manifest.load()
        for module in course.modules:
            if module.id != this and grade_ids & set(module.by_grade_cell()):
                return module.id
    except Exception:  # noqa: BLE001 - naming the module is a courtesy
        pass
    return ""


def _repair(nb: NotebookNode, known: dict[str, KnownCell]) -> list[str]:
    """Keep the released settings on the first cell of each known id; strip the rest."""
    notes = []
    first: dict[str, int] = {}
    for number, cell in enumerate(nb.cells, 1):
        if "nbgrader" not in cell.metadata:
            continue
        meta = cell.metadata["nbgrader"]
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if not isinstance(grade_id, str) or not grade_id:
            del cell.metadata["nbgrader"]
            if not isinstance(meta, dict) or any(
                meta.get(k) for k in ("grade", "solution", "locked", "task")
            ):
                notes.append(
                    f"cell {number} had nbgrader metadata without a grade id; it was "
                    "graded as a cell you added"
                )
            continue
        label = _quote(grade_id)
        if grade_id not in known:
            del cell.metadata["nbgrader"]
            notes.append(
                f"cell {number} carried the grade id {label}, which this notebook does not "
                "have (copied from another notebook?); it was graded as a cell you added"
            )
            continue
        if grade_id in first:
            del cell.metadata["nbgrader"]
            notes.append(
                f"cell {number} repeats the grade id {label} of cell {first[grade_id]} (a "
                "copied cell?); it was graded as a cell you added"
            )
            continue
        first[grade_id] = number
        released = known[grade_id]
        edited = [
            k
            for k in ("grade", "solution", "task")
            if bool(meta.get(k, False)) != getattr(released, k)
        ]
        if meta.get("schema_version") != SCHEMA_VERSION:
            edited.append("schema_version")
        if edited:
            notes.append(
                f"cell {number} ({label}) had its nbgrader settings edited "
                f"({', '.join(edited)}); the released ones were restored"
            )
        cell.metadata["nbgrader"] = from_dict(released.metadata())
    return notes


# ---------------------------------------------------------------- what the instructor sees
def _record(gb: Gradebook, info: dict[str, Any], reason: str | None, flag: bool = True) -> None:
    """Flag the submitted notebook; put ``reason`` in its comments, or clear an old one."""
    try:
        record = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
    except MissingEntry:
        return
    if flag or reason is not None:
        record.flagged = True
    for comment in record.comments:
        if reason is not None:
            comment.auto_comment = NOT_GRADED + reason
        elif (comment.auto_comment or "").startswith(NOT_GRADED):
            comment.auto_comment = None  # from an earlier run; nbgrader sets its own
    gb.db.commit()


def _stand_in(nb: NotebookNode, info: dict[str, Any], reason: str) -> NotebookNode:
    """The notebook nbgrader grades in place of one it cannot: the reason, and nothing else."""
    metadata = nb.get("metadata")
    kernelspec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    nb = from_dict({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    if isinstance(kernelspec, dict):
        nb.metadata["kernelspec"] = kernelspec  # nbgrader replaces it with the released one
    path = f"submitted/{info['student']}/{info['assignment']}/{info['notebook']}.ipynb"
    nb.cells.append(
        _markdown(
            nb,
            f"**{NOT_GRADED.strip()}** {reason}.\n\nThe submitted file is kept unchanged "
            f"(`{path}`); a person will look at it. Until then every exercise of this "
            "notebook scores 0.",
        )
    )
    return nb


def _markdown(nb: NotebookNode, text: str) -> NotebookNode:
    cell = new_markdown_cell(text)
    if nb.get("nbformat_minor", 0) < 5:
        cell.pop("id", None)  # cell ids exist from nbformat 4.5 on
    return cell


def _quote(text: str) -> str:
    """A learner-chosen id, shown safely in markdown and in one log line."""
    shown = re.sub(r"[^A-Za-z0-9_.\-]", "?", text[:60])
    return f"`{shown}`" + ("..." if len(text) > 60 else "")


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """An error message on one line, without brackets (consoles may read them as markup)."""
    text = " ".join(str(exc).split()).replace("[", "(").replace("]", ")")
    return text if len(text) <= limit else text[: limit - 3] + "..."
