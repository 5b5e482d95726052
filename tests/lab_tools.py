"""A real JupyterLab server for tests and benchmarks: started on a free loopback port, always
stopped.

``running_lab`` starts either the learner lab (``f0 lab``, as ``make lab`` does) or stock
``jupyter lab`` on a course copy, with its own Jupyter config, runtime, settings and workspace
folders under a temporary folder, waits (bounded) until it answers, and on leaving stops the
server, its process group and whatever it started (kernels, terminals), also when the body
failed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from academy.manifest import Course, Module

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
# JupyterLab user settings, by plugin id: {"@scope/package:plugin": {setting: value}}
NO_VIRTUAL_SCROLLING = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}
"""Every cell stays in the page, so outputs far down can be found."""
NO_NEWS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}
}
"""No "get notified about Jupyter news?" toast over the page."""


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server."""

    port: int
    token: str
    root: Path  # the course folder it was started in
    log: Path  # its stderr
    process: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``, without the token."""
        return f"http://{HOST}:{self.port}"

    def url(self, path: str = "/", *, scheme: str = "http") -> str:
        """``path`` (from the server's root, e.g. ``/lab/tree/...``) with the token in its query;
        ``scheme="ws"`` for a websocket."""
        return f"{scheme}://{HOST}:{self.port}{path}{'&' if '?' in path else '?'}token={self.token}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def learner_course(tmp_path: Path, course: Course, module: Module) -> Path:
    """A learner's course copy in ``tmp_path/course``: course.yaml, the module's hidden suite,
    its released exercise folder and an empty solutions/ (``f0 lab`` makes work/ from it)."""
    root = tmp_path / "course"
    (root / "autograder").mkdir(parents=True)
    shutil.copy(course.root / "course.yaml", root / "course.yaml")
    shutil.copy(course.suite_path(module), root / module.suite)
    shutil.copytree(course.release_notebook(module).parent, root / "exercises" / module.id)
    (root / "solutions").mkdir()
    return root


def write_settings(folder: Path, settings: Mapping[str, Mapping[str, object]]) -> None:
    """JupyterLab user settings files in ``folder`` (its JUPYTERLAB_SETTINGS_DIR)."""
    for plugin_id, values in settings.items():
        package, plugin = plugin_id.split(":")
        (folder / package).mkdir(parents=True, exist_ok=True)
        (folder / package / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))


@contextmanager
def running_lab(
    tmp_path: Path,
    root: Path,
    *,
    learner: bool = True,
    settings: Mapping[str, Mapping[str, object]] | None = None,
    startup_timeout: float = 90,
) -> Iterator[Lab]:
    """Start JupyterLab on ``root`` (on 127.0.0.1, a free port, a random token, no browser, no
    news or update checks), yield it once ``/api/status`` answers, stop it on leaving.

    ``learner=True``: the learner lab, ``f0 lab`` started in ``root`` (it serves the learner's
    workspace ``root/work``), with a PATH that does not hold this environment and no
    VIRTUAL_ENV, as a learner's shell may have. ``learner=False``: stock ``jupyter lab`` of
    this environment serving ``root`` itself, this environment first on PATH, with the app
    exposed to page scripts (``window.jupyterapp``, as the learner lab does) and
    ``--allow-root`` when run as root.

    ``settings`` (e.g. ``NO_VIRTUAL_SCROLLING``, ``NO_NEWS``) are written as user settings
    first. Jupyter's config, runtime, settings and workspaces folders and the server's stderr
    (``lab.log``) are in ``tmp_path``. Raises RuntimeError, with the log's end, when the server
    exits or does not answer within ``startup_timeout`` seconds.
    """
    write_settings(tmp_path / "settings", settings or {})
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    flags = [
        "--no-browser",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    quiet = [
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if learner:
        name = "f0 lab"
        env["PATH"] = os.pathsep.join(
            p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if Path(p) != BIN
        )
        env.pop("VIRTUAL_ENV", None)
        command = [str(BIN / "f0"), "lab", "--", *flags, *quiet]
    else:
        name = "JupyterLab"
        env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        command = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            *flags,
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            *quiet,
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        ]
    log = tmp_path / "lab.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    lab = Lab(port, token, root, log, process)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                with urllib.request.urlopen(lab.url("/api/status"), timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} did not start on port {port}:\n{tail}") from None
                time.sleep(0.3)
        yield lab
    finally:
        stop(process)


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (the server shuts its kernels down), SIGKILL it after
    15 s; then end whatever the server started that still runs (kernels and terminals have their
    own session, so the group signal does not reach them), each by its own process group. Every
    wait is bounded."""
    try:
        started = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    mine = os.getpgrp()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in started if p.is_running()]  # is_running: same pid, same start
        for proc in alive:
            try:
                group = os.getpgid(proc.pid)
                if group != mine:
                    os.killpg(group, sig)
                else:
                    proc.send_signal(sig)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        psutil.wait_procs(alive, timeout=10)
