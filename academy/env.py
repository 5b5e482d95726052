"""The environment the course's command-line tools run in, as subprocesses.

Both the authoring pipeline (``academy.build``: ``nbgrader generate_assignment``) and runtime
grading (``academy.grading.parallel``, ``academy.service.tasks``: ``nbgrader autograde``) start
tools by name, so both need this interpreter's bin folder on PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["SITE_HOOK", "die_with_parent", "install_site_hook", "tool_env"]

# A .pth file's "import" line runs at every interpreter start-up of that environment.
SITE_HOOK = "f0-skip-rfc3987-syntax.pth"
_SITE_HOOK_LINE = 'import sys; sys.modules.setdefault("rfc3987_syntax", None)\n'


def install_site_hook(site_packages: Path | None = None) -> Path:
    """Skip jsonschema's ``rfc3987_syntax`` for every process of this environment.

    ``import jsonschema`` imports it, and it builds 39 Lark grammars on import: 1.4 s of CPU
    (1.56 s against 0.15 s without it, here). Stock nbgrader commands, every Jupyter server
    (through jupyter_events) and the formgrader pay it before any course code runs, so the
    same skip as ``academy/__init__.py`` goes into the environment's site-packages as a
    ``.pth`` file (``make env``; the hub's runtime environment). Nothing in the course
    validates IRI formats; jsonschema then leaves them unchecked, as without the package.
    """
    if site_packages is None:
        import sysconfig

        site_packages = Path(sysconfig.get_paths()["purelib"])
    path = site_packages / SITE_HOOK
    path.write_text(_SITE_HOOK_LINE, encoding="utf-8")
    return path


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


if __name__ == "__main__":  # python -m academy.env: install the hook (make env)
    print(f"installed {install_site_hook()}")
