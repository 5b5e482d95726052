"""The learner's hand-out when the course is graded by a service: everything a learner needs to
work and check (``f0 check`` sends notebooks to ``f0 serve``), and nothing that grades.

Today the learner's copy is the whole repository, with ``autograder/`` (every hidden suite),
``curriculum/`` (every reference solution) and ``solutions/``. This builds the hand-out instead:
``course.yaml`` (modules, points, hints), the released notebooks (``exercises/``), the library
(``framework0/``), the platform package (``academy/``, which holds no suite and no solution),
``pyproject.toml``, ``Makefile`` and ``README.md``. A test searches it for suite and solution
text, from every file of every suite, a folder suite's included (``tests/test_service.py``)::

    python -m academy.service.handout OUT_FOLDER
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from academy import manifest
from academy.manifest import Course

__all__ = ["HANDOUT_DIRS", "HANDOUT_FILES", "build_learner_handout"]

HANDOUT_FILES = ("course.yaml", "pyproject.toml", "Makefile", "README.md")
HANDOUT_DIRS = ("exercises", "framework0", "academy")
NEVER = ("autograder", "curriculum", "solutions", "submitted", "autograded", "feedback")
IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".ipynb_checkpoints", ".hypothesis", "*.db", "*private*.pem"
)


def build_learner_handout(course: Course, dest: Path) -> Path:
    """Write the hand-out into ``dest`` (which must not exist yet); returns ``dest``."""
    dest.mkdir(parents=True)
    for name in HANDOUT_FILES:
        if (course.root / name).is_file():
            shutil.copy2(course.root / name, dest / name)
    for name in HANDOUT_DIRS:
        shutil.copytree(course.root / name, dest / name, ignore=IGNORE, symlinks=True)
    for name in NEVER:  # a belt to the braces above: none of these may be in a hand-out
        if (dest / name).exists():
            raise RuntimeError(f"the hand-out holds {name}/")
    return dest


if __name__ == "__main__":  # pragma: no cover - a thin command
    out = build_learner_handout(manifest.load(), Path(sys.argv[1]))
    print(f"learner hand-out written to {out}")
