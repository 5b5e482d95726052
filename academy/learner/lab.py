"""The learner's JupyterLab: ``make lab`` runs ``f0 lab``, which makes the workspace
(``f0 start``) and starts ``jupyter lab --config=academy/learner/lab_config.py``.

What the configuration does, and why:

* **f0 in the terminal.** Jupyter starts its terminals as *login* shells when it has no
  terminal of its own, and a login shell reads the system profile, which resets PATH: the
  course's ``f0`` was "command not found". The learner lab runs an interactive, non-login
  ``bash --rcfile academy/learner/terminal.rc`` instead, which reads the usual interactive
  start-up files and then puts this environment's ``bin`` folder (``F0_BIN``) first on PATH.
* **The learner's own files.** The lab opens ``work/`` (the workspace), so what the learner
  edits is never a tracked file that a course command regenerates, and ``solutions/`` is not
  in the file browser.
* **No instructor tools.** Create Assignment, Formgrader, the Nbgrader menu and (without an
  nbgrader exchange) the Assignment and Course lists are turned off: they fail or mislead in a
  learner's checkout. So is the news pop-up.
* **Check in the notebook.** Each grade cell draws "Save and check" buttons and the hints
  (``academy.learner.incell``); they save through JupyterLab's application object, which the
  learner lab exposes to page scripts (``LabApp.expose_app_in_browser``).
  Validate stays: every grade cell runs the hidden-suite check (``academy.learner.incell``), so
  Validate fails whenever the hidden tests fail.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from academy import manifest
from academy.learner.workspace import WORK_DIR

__all__ = ["CONFIG_FILE", "LEARNER_HIDDEN_PLUGINS", "configure", "lab_command", "terminal_command"]

HERE = Path(__file__).resolve().parent
CONFIG_FILE = HERE / "lab_config.py"
TERMINAL_RC = HERE / "terminal.rc"
LEARNER_HIDDEN_PLUGINS = (
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:assignment-list",
    "@jupyter/nbgrader:course-list",
    "@jupyter/nbgrader:menu",  # its entries open the tools above
    "@jupyterlab/apputils-extension:announcements",  # the news pop-up: no internet, no news
)
LEARNER_SERVER_EXTENSIONS_OFF = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
)


def bin_dir() -> Path:
    """This environment's scripts folder (where ``f0`` is)."""
    return Path(sys.executable).parent


def terminal_command() -> list[str]:
    """An interactive, non-login shell whose start-up file puts ``F0_BIN`` first on PATH."""
    bash = shutil.which("bash")
    if bash:
        return [bash, "--rcfile", str(TERMINAL_RC), "-i"]
    return [shutil.which("sh") or "/bin/sh", "-i"]  # reads $ENV (set by configure) instead


def configure(c: Any, start: Path | None = None) -> None:
    """Fill the traitlets config ``c`` of the learner lab for the course at or above ``start``."""
    course = manifest.load(manifest.find_course_root(start))
    work = course.root / WORK_DIR
    os.environ["F0_BIN"] = str(bin_dir())  # read by terminal.rc in every terminal
    os.environ["ENV"] = str(TERMINAL_RC)  # the same for a POSIX sh without bash
    os.environ["PATH"] = f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}"
    c.ServerApp.terminado_settings = {"shell_command": terminal_command()}
    c.ServerApp.root_dir = str(work if work.is_dir() else course.root)
    first = course.modules[0]
    if (work / first.id / first.notebook).is_file():
        c.LabApp.default_url = f"/lab/tree/{first.id}/{first.notebook}"
    c.ServerApp.jpserver_extensions = {name: False for name in LEARNER_SERVER_EXTENSIONS_OFF}
    c.ServerApp.tornado_settings = {"page_config_hook": hide_instructor_tools}
    lab_settings(c)


def lab_settings(c: Any) -> None:
    """Settings the learner lab shares with the hub's learner servers."""
    # the check buttons under each exercise save the notebook through the application object
    # (academy.learner.incell); a page script could reach it anyway, this only names it
    c.LabApp.expose_app_in_browser = True
    c.LabApp.news_url = None
    c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"


def hide_instructor_tools(handler: Any, page_config: dict[str, Any]) -> dict[str, Any]:
    """JupyterLab's page-config hook: the learner lab loads no instructor plugins."""
    disabled = list(page_config.get("disabledExtensions") or [])
    page_config["disabledExtensions"] = disabled + [
        name for name in LEARNER_HIDDEN_PLUGINS if name not in disabled
    ]
    return page_config


def lab_command(extra: list[str]) -> list[str]:
    """``jupyter lab`` with the learner configuration and the caller's extra options."""
    root_flag = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [
        str(bin_dir() / "jupyter"),
        "lab",
        f"--config={CONFIG_FILE}",
        *root_flag,
        *extra,
    ]
