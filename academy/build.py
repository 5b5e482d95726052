"""Generate exercises/ and solutions/ from curriculum/, and tell when they are stale.

``make generate`` (``f0 generate``) runs the steps below in order; each is a small class
with one job, like nbgrader's preprocessors:

1. ``SyncGradeCells``: course.yaml's points go into the source notebooks' grade cells, and
   every exercise in the manifest must have its grade cell (and no stray grade cell exists).
2. ``GenerateExercises``: ``nbgrader generate_assignment`` writes exercises/.
3. ``GenerateSolutions``: ``nbgrader generate_solution`` writes solutions/, executed.
4. ``NormalizeNotebooks``: drops what changes on every run (timings, widget state, how a
   cell's printed text happened to be split into stream chunks), so the same sources give
   byte-identical notebooks, and writes the notebook's course and module into its metadata
   (``metadata.academy``), so ``f0 check`` can refuse another module's notebook.

``stale_files`` regenerates into a temporary copy of the course and lists every generated file
that differs from the committed one.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import nbformat

from academy.env import tool_env  # it lives in academy.env; still importable from here
from academy.errors import BuildError
from academy.manifest import Course, ManifestError, Module

__all__ = ["GENERATE_COMMAND", "BuildError", "generate", "stale_files", "tool_env"]

GENERATE_COMMAND = "make generate"
COURSE_FILES = ("course.yaml", "jupyter_config.py", "nbgrader_config.py")
COURSE_DIRS = ("curriculum", "autograder")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class Step(Protocol):
    def run(self, course: Course, modules: list[Module]) -> None: ...


def _assignments(course: Course, modules: list[Module]) -> list[str]:
    """nbgrader assignment arguments: one glob for the whole course (one process), else ids."""
    if {m.id for m in modules} == {m.id for m in course.modules}:
        return ["*"]
    return [m.id for m in modules]


def _nbgrader(course: Course, *args: str) -> None:
    command = [str(Path(sys.executable).parent / "nbgrader"), *args, "--force", "--log-level=WARN"]
    proc = subprocess.run(command, cwd=course.root, env=tool_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"`nbgrader {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")


@dataclass
class SyncGradeCells:
    """Write each exercise's points from course.yaml into its grade cell."""

    def run(self, course: Course, modules: list[Module]) -> None:
        for module in modules:
            self.sync(course, module)

    def sync(self, course: Course, module: Module) -> None:
        path = course.source_notebook(module)
        if not path.is_file():
            raise BuildError(f"{module.id}: source notebook {path} does not exist")
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as exc:  # nbformat's NotJSONError is a ValueError
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            where = path.relative_to(course.root)
            raise BuildError(f"{where}: not a readable notebook ({reason})") from exc
        wanted = module.by_grade_cell()
        found = set()
        changed = False
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not meta.get("grade"):
                continue
            grade_id = meta.get("grade_id")
            if grade_id not in wanted:
                raise BuildError(
                    f"{path}: grade cell {grade_id!r} is not an exercise in "
                    "course.yaml; add it there or make the cell ungraded"
                )
            found.add(grade_id)
            if meta.get("points") != wanted[grade_id].points:
                meta["points"] = wanted[grade_id].points
                changed = True
        missing = sorted(set(wanted) - found)
        if missing:
            raise BuildError(
                f"{path}: course.yaml lists grade cells {missing} that the notebook does not have"
            )
        if changed:
            nbformat.write(nb, path)


@dataclass
class GenerateExercises:
    """nbgrader generate_assignment: solutions cleared, checksums recorded in the gradebook."""

    def run(self, course: Course, modules: list[Module]) -> None:
        for assignment in _assignments(course, modules):
            _nbgrader(course, "generate_assignment", assignment)


@dataclass
class GenerateSolutions:
    """nbgrader generate_solution: the reference notebook, executed (``execute=False``: not
    executed, for ``stale_files``, which compares solutions without their outputs)."""

    execute: bool = True

    def run(self, course: Course, modules: list[Module]) -> None:
        extra = () if self.execute else ("--ExecuteReference.enabled=False",)
        for assignment in _assignments(course, modules):
            _nbgrader(course, "generate_solution", assignment, *extra)


@dataclass
class NormalizeNotebooks:
    """Remove run-to-run noise: execution timings, widget state and random widget ids.

    Widget views need the live kernel anyway; their text form stays in the output.
    """

    def run(self, course: Course, modules: list[Module]) -> None:
        for module in modules:
            for path in (course.release_notebook(module), course.solution_notebook(module)):
                nb = nbformat.read(path, as_version=4)
                nb.metadata.pop("widgets", None)
                nb.metadata["academy"] = {"course": course.course_id, "module": module.id}
                for cell in nb.cells:
                    cell.metadata.pop("execution", None)
                    for output in cell.get("outputs", []):
                        output.get("data", {}).pop(WIDGET_MIME, None)
                    if cell.get("outputs"):
                        cell.outputs = merged_streams(cell.outputs)
                nbformat.write(nb, path)


def merged_streams(outputs: list) -> list:
    """Consecutive stream outputs of the same stream as one output: the kernel splits printed
    text into chunks depending on timing, which changed solution notebooks run to run."""
    merged: list = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (
            output.get("output_type") == "stream"
            and last is not None
            and last.get("output_type") == "stream"
            and last.get("name") == output.get("name")
        ):
            last["text"] = _text(last) + _text(output)
        else:
            merged.append(output)
    return merged


def _text(output) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else text


PIPELINE: tuple[Step, ...] = (
    SyncGradeCells(),
    GenerateExercises(),
    GenerateSolutions(),
    NormalizeNotebooks(),
)


# What stale_files regenerates: the same, but solutions are not executed (their outputs are
# not compared here: nbval runs them, in make test).
STALE_CHECK: tuple[Step, ...] = tuple(
    GenerateSolutions(execute=False) if isinstance(step, GenerateSolutions) else step
    for step in PIPELINE
)


def generate(
    course: Course, module_ids: list[str] | None = None, pipeline: tuple[Step, ...] = PIPELINE
) -> list[Module]:
    """Run the pipeline for the given modules (default: all of them)."""
    try:
        modules = [course.module(m) for m in module_ids] if module_ids else list(course.modules)
    except ManifestError as exc:
        raise BuildError(str(exc)) from exc
    for step in pipeline:
        step.run(course, modules)
    return modules


def copy_course(course: Course, dest: Path) -> Path:
    """Copy what generation reads (not the instructor's gradebook or submissions)."""
    for name in COURSE_FILES:
        shutil.copy2(course.root / name, dest / name)
    for name in COURSE_DIRS:
        shutil.copytree(
            course.root / name,
            dest / name,
            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"),
        )
    return dest


def stale_files(course: Course, module_ids: list[str] | None = None) -> list[str]:
    """Generated files that differ from what ``make generate`` would write now (for the
    given modules only: their folders are regenerated and compared; default: the course)."""
    from academy import manifest

    stale = []
    with tempfile.TemporaryDirectory(prefix="f0-build-") as tmp:
        fresh = manifest.load(copy_course(course, Path(tmp)))
        modules = generate(fresh, module_ids, STALE_CHECK)
        for folder in ("curriculum", "exercises", "solutions"):
            if module_ids is None:
                stale += _differences(course.root / folder, Path(tmp) / folder, folder)
                continue
            for module in modules:
                label = f"{folder}/{module.id}"
                stale += _differences(course.root / label, Path(tmp) / label, label)
    return stale


def _differences(committed: Path, fresh: Path, label: str) -> list[str]:
    if not committed.is_dir():
        return [f"{label}/ (missing)"]
    out = []
    comparison = filecmp.dircmp(committed, fresh, ignore=["__pycache__", ".ipynb_checkpoints"])
    stack = [(comparison, label)]
    while stack:
        cmp, prefix = stack.pop()
        out += [f"{prefix}/{name} (extra)" for name in cmp.left_only]
        out += [f"{prefix}/{name} (missing)" for name in cmp.right_only]
        for name in cmp.common_files:
            if not _same(Path(cmp.left) / name, Path(cmp.right) / name):
                out.append(f"{prefix}/{name}")
        stack += [(sub, f"{prefix}/{name}") for name, sub in cmp.subdirs.items()]
    return sorted(out)


def _same(committed: Path, fresh: Path) -> bool:
    """Equal files; for executed notebooks, equal apart from outputs (nbval checks those)."""
    if committed.suffix != ".ipynb" or committed.parts[-3:-2] != ("solutions",):
        return committed.read_bytes() == fresh.read_bytes()
    return _without_outputs(committed) == _without_outputs(fresh)


def _without_outputs(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("language_info", None)  # the kernel writes it when it runs the notebook
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb
