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
``ScoreHiddenSuites`` instead), or when the module's suite file is missing. One notebook file
is graded once per saved version: the five grade cells of a module share one run.
"""

from __future__ import annotations

import os
from pathlib import Path

from academy.errors import CaseFailed

__all__ = ["ExerciseNotPassed", "check_exercise", "learner_notebook"]

LEARNER_AREAS = ("work", "exercises")
_cache: dict[tuple[str, str], object] = {}


ExerciseNotPassed = CaseFailed  # an AssertionError: nbgrader counts the grade cell failed


def learner_notebook(module_id: str, cwd: Path | None = None):
    """(course, module, notebook path) to check, or None where checking does not apply."""
    from academy import manifest
    from academy.errors import AcademyError

    here = (cwd or Path.cwd()).resolve()
    try:
        course = manifest.load(manifest.find_course_root(here))
        module = course.module(module_id)
    except (AcademyError, OSError):
        return None
    if not course.suite_path(module).is_file():
        return None
    session = os.environ.get("JPY_SESSION_NAME", "")
    candidates = [Path(session)] if session.endswith(".ipynb") else []
    candidates.append(here / module.notebook)
    path = next((p.resolve() for p in candidates if p.is_file() and p.parent == here), None)
    if path is None:
        return None
    try:
        area = path.relative_to(course.root).parts[0]
    except ValueError:
        return None
    if area not in LEARNER_AREAS:
        return None
    return course, module, path


def check_exercise(module_id: str, exercise_id: str) -> None:
    """Grade the saved notebook with the hidden tests; raise unless ``exercise_id`` passes."""
    __tracebackhide__ = True  # IPython: show the message, not this module's frames
    found = learner_notebook(module_id)
    if found is None:
        return
    course, module, path = found
    import hashlib

    from academy.learner.checking import check_notebook

    key = (str(path), hashlib.sha256(path.read_bytes()).hexdigest())
    result = _cache.get(key)
    if result is None:
        _cache.clear()
        result = _cache[key] = check_notebook(course, module, path)
    line = result.line(exercise_id)
    where = path.relative_to(course.root)
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
        f"`f0 hint {module.id} {exercise_id}` gives a hint."
    )
