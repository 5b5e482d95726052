"""The environment the course's command-line tools run in, as subprocesses.

Both the authoring pipeline (``academy.build``: ``nbgrader generate_assignment``) and runtime
grading (``academy.grading.parallel``, ``academy.service.tasks``: ``nbgrader autograde``) start
tools by name, so both need this interpreter's bin folder on PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["die_with_parent", "tool_env"]


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with the interpreter's bin folder first on PATH.

    nbgrader runs ``alembic`` (and we run ``nbgrader``) by name; without the folder on PATH a
    first run leaves a gradebook without its version table.
    """
    env = dict(os.environ, **(extra or {}))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


def die_with_parent() -> None:
    """Linux: this process is killed (SIGKILL) when the thread that started it ends.

    A grading run started by a Dask worker (or by ``f0 autograde``) lives in a session of its
    own, so killing the worker's process group leaves it running; with this it ends with its
    parent instead of grading on for nobody. A process whose parent already died before this
    call (it was reparented) exits at once. Elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)
