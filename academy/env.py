"""The environment the course's command-line tools run in, as subprocesses.

Both the authoring pipeline (``academy.build``: ``nbgrader generate_assignment``) and runtime
grading (``academy.grading.parallel``, ``academy.service.tasks``: ``nbgrader autograde``) start
tools by name, so both need this interpreter's bin folder on PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["tool_env"]


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with the interpreter's bin folder first on PATH.

    nbgrader runs ``alembic`` (and we run ``nbgrader``) by name; without the folder on PATH a
    first run leaves a gradebook without its version table.
    """
    env = dict(os.environ, **(extra or {}))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return env
