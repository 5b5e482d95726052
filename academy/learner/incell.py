"""The check every exercise's grade cell runs, so that nbgrader's Validate tells the truth.

nbgrader's *Validate* (the toolbar button and ``nbgrader validate``) runs the notebook and
reports success when no grade cell raises. Our hidden tests do not live in the notebook, so
grade cells that were only comments made Validate say "Success! Your notebook passes all the
tests" for an untouched module. Each grade cell now calls :func:`check_exercise`, which grades
the notebook *file* (as last saved) with the same trusted hidden-suite runner as ``f0 check``
and raises when the exercise does not get full marks: Validate can no longer report success
for work the hidden suites fail, and running the cell shows the result under the exercise.

We chose this over taking Validate away because learners already know the button, nbgrader's
own command keeps working from a terminal, and the same cell gives in-notebook feedback.

It does nothing (prints nothing, raises nothing) where the hidden suites are not available or
the notebook is not the learner's: outside a course checkout (an instructor's sandboxed
autograde kernel sees no course), for notebooks outside ``work/`` and ``exercises/`` (the
executed ``solutions/`` and nbgrader's ``autograded/`` copies, which are graded by
``ScoreHiddenSuites`` instead), or when the module's suite is missing and no grading service
is configured. On JupyterHub, where the hub sets ``F0_SERVICE_URL`` and publishes the course
manifest, a fetched notebook is checked on the course's grading service (``f0 serve --hub``),
and the learner holds no suite. One notebook file is graded once per saved version: the five
grade cells of a module share one run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from academy.errors import CaseFailed

__all__ = ["ExerciseNotPassed", "check_exercise", "controls_script", "learner_notebook"]

LEARNER_AREAS = ("work", "exercises")
LEARNER_AREAS_NAMES = frozenset(LEARNER_AREAS)
_cache: dict[tuple[str, str], Any] = {}

# The buttons under each exercise (a JavaScript output, so it needs no ipywidgets round trip).
# "Save and check" saves the notebook through JupyterLab's own command, then runs this grade
# cell (or every grade cell), so the check always grades what the learner sees. The learner
# lab exposes the application object (``LabApp.expose_app_in_browser``); elsewhere the output
# says to save and run the cell. Hints are course.yaml's, shown one at a time.
_CONTROLS = """
(function (element, exercise, hints) {
  const app = window.jupyterapp;
  const box = document.createElement('div');
  box.className = 'f0-check-controls';
  box.style.margin = '4px 0';
  const button = (label, title) => {
    const b = document.createElement('button');
    b.textContent = label; b.title = title;
    b.className = 'jp-Button jp-mod-styled jp-mod-accept f0-button';
    b.style.marginRight = '6px';
    box.appendChild(b);
    return b;
  };
  const nbgrader = (cell) => {
    const m = cell.model;
    return (m.getMetadata ? m.getMetadata('nbgrader') : m.metadata.get('nbgrader')) || {};
  };
  async function saveAndRun(keep) {
    const panel = app.shell.currentWidget;
    const notebook = panel && panel.content;
    if (!notebook || !notebook.widgets) { return; }
    await panel.context.save();
    const cells = notebook.widgets.filter(keep);
    for (const cell of cells) {
      notebook.activeCellIndex = notebook.widgets.indexOf(cell);
      await app.commands.execute('notebook:run-cell');
    }
  }
  if (app) {
    const own = button('Save and check ' + exercise,
      'save the notebook, then grade exercise ' + exercise + ' with the hidden tests');
    own.classList.add('f0-check-one');
    own.onclick = () => saveAndRun((cell) => cell.node.contains(element));
    const all = button('Save and check every exercise',
      "save the notebook, then run the check of every exercise");
    all.classList.add('f0-check-all');
    all.onclick = () => saveAndRun((cell) => nbgrader(cell).grade === true);
  } else {
    const note = document.createElement('span');
    note.textContent = 'To check again: save the notebook (Ctrl-S), then run this cell. ';
    box.appendChild(note);
  }
  if (hints.length) {
    const list = document.createElement('ol');
    list.className = 'f0-hints';
    const next = button('Next hint (' + hints.length + ')', 'show one more hint');
    next.classList.add('f0-hint');
    next.onclick = () => {
      const li = document.createElement('li');
      li.textContent = hints[list.children.length];
      list.appendChild(li);
      next.textContent = 'Next hint (' + (hints.length - list.children.length) + ' left)';
      next.disabled = list.children.length >= hints.length;
    };
    box.appendChild(list);
  }
  element.appendChild(box);
})(element, %s, %s);
"""


def controls_script(exercise: str, hints: list[str]) -> str:
    """The JavaScript that draws the check buttons and hints under one exercise."""
    return _CONTROLS % (json.dumps(exercise), json.dumps(list(hints)))


def _show_controls(exercise: Any) -> None:
    """Display the buttons in a notebook's kernel; nothing in nbgrader or a plain Python."""
    try:
        from IPython import get_ipython
        from IPython.display import Javascript, display
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    display(Javascript(controls_script(exercise.id, exercise.hints)))


class ExerciseNotPassed(CaseFailed):
    """An exercise without full marks: the grade cell fails (nbgrader's Validate says so).

    IPython shows ``_render_traceback_``'s lines instead of a traceback, so the learner reads
    the result, not this module's code.
    """

    def _render_traceback_(self) -> list[str]:
        return [
            f"\x1b[31m{line}\x1b[0m" if line.lstrip().startswith("✗") else line
            for line in str(self).split("\n")
        ]


def learner_notebook(module_id: str, cwd: Path | None = None):
    """(course, module, notebook path) to check, or None where checking does not apply.

    Two kinds of learner notebook are checked: one in a course checkout's ``work/`` or
    ``exercises/`` (the embedded lab, a hand-out), and, where the course's grading service is
    configured (``F0_SERVICE_URL``), a notebook fetched anywhere else with the course manifest
    the hub publishes (``academy.learner.published``)."""
    here = (cwd or Path.cwd()).resolve()
    if LEARNER_AREAS_NAMES.intersection(here.parts):
        return _in_checkout(module_id, here)
    if os.environ.get("F0_SERVICE_URL"):
        return _fetched(module_id, here)
    return None  # e.g. nbgrader's autograded/ copy: no course to load (the cheap answer)


def _notebook_in(here: Path, notebook: str) -> Path | None:
    """The notebook this kernel runs (JupyterLab names it), else ``notebook`` in ``here``."""
    session = os.environ.get("JPY_SESSION_NAME", "")
    candidates = [Path(session)] if session.endswith(".ipynb") else []
    candidates.append(here / notebook)
    return next((p.resolve() for p in candidates if p.is_file() and p.parent == here), None)


def _in_checkout(module_id: str, here: Path):
    from academy import manifest
    from academy.errors import AcademyError

    try:
        course = manifest.load(manifest.find_course_root(here))
        module = course.module(module_id)
    except (AcademyError, OSError):
        return None
    from academy.service.client import service_configured

    # graded here (the suite, a file or a folder of them, is at hand) or on the service
    if not (course.suite_path(module).exists() or service_configured(course)):
        return None
    path = _notebook_in(here, module.notebook)
    if path is None:
        return None
    try:
        area = path.relative_to(course.root).parts[0]
    except ValueError:
        return None
    if area not in LEARNER_AREAS:
        return None
    return course, module, path


def _fetched(module_id: str, here: Path):
    from academy.errors import AcademyError
    from academy.learner.published import published_course

    try:
        course = published_course()
        module = course.module(module_id) if course is not None else None
    except (AcademyError, OSError):
        return None
    if course is None or module is None:
        return None
    path = _notebook_in(here, module.notebook)
    return None if path is None else (course, module, path)


def check_exercise(module_id: str, exercise_id: str) -> None:
    """Grade the saved notebook with the hidden tests; raise unless ``exercise_id`` passes."""
    __tracebackhide__ = True  # IPython: show the message, not this module's frames
    found = learner_notebook(module_id)
    if found is None:
        return
    course, module, path = found
    import hashlib

    _show_controls(module.exercise(exercise_id))

    from academy.learner.checking import check_notebook

    key = (str(path), hashlib.sha256(path.read_bytes()).hexdigest())
    result = _cache.get(key)
    # progress is kept in a course checkout; a fetched notebook's grade is the instructor's
    in_checkout = path.is_relative_to(course.root)
    if result is None:
        _cache.clear()
        result = _cache[key] = check_notebook(course, module, path, record=in_checkout)
    line = result.line(exercise_id)
    where = path.relative_to(course.root) if in_checkout else path.name
    if line.status == "passed":
        print(
            f"✓ Exercise {exercise_id}: {line.score:g} / {line.exercise.points:g}, every "
            f"hidden check passes (your notebook as last saved, {where})."
        )
        return
    if line.status == "not started":
        raise ExerciseNotPassed(
            f"Exercise {exercise_id} is not started: replace `raise NotImplementedError()` "
            "with your code, save the notebook (Ctrl-S) and run this cell again."
        )
    failures = "\n".join(f"  ✗ {text}" for text in line.failures)
    blocking = (
        f"A critical check failed: it blocks module {module.number}, and every level that "
        "needs it, whatever the score.\n"
        if line.critical
        else ""
    )
    raise ExerciseNotPassed(
        f"Exercise {exercise_id}: {line.score:g} / {line.exercise.points:g} with the hidden "
        f"tests (your notebook as last saved, {where}). Failing:\n{failures}\n{blocking}"
        "Next hint: the button above, or `f0 hint "
        f"{module.id} {exercise_id}` in a terminal."
    )
