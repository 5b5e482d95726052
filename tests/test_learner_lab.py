"""The learner lab of `make lab` (`f0 lab`): a real JupyterLab server on a course copy.

Its own terminal (started through the REST API and websocket, as JupyterLab's Terminal does)
finds `f0` even when the server's PATH lacks this environment (Jupyter used to start a login
shell, whose system profile reset PATH). The lab serves the learner's workspace, not the
course folder, and loads none of nbgrader's instructor plugins.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from course_tools import course

websocket = pytest.importorskip("websocket")

COURSE = course()
MODULE = COURSE.module("module1")
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.xdist_group("learner_lab")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def learner_course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "autograder").mkdir(parents=True)
    shutil.copy(COURSE.root / "course.yaml", root / "course.yaml")
    shutil.copy(COURSE.suite_path(MODULE), root / MODULE.suite)
    shutil.copytree(COURSE.release_notebook(MODULE).parent, root / "exercises" / MODULE.id)
    (root / "solutions").mkdir()
    return root


def stop(server: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, None)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def learner_lab(tmp_path):
    """`f0 lab` on a course copy, with a PATH that does not hold this environment."""
    root = learner_course(tmp_path)
    port, token = free_port(), secrets.token_hex(16)
    bare_path = os.pathsep.join(
        p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if Path(p) != BIN
    )
    env = dict(
        os.environ,
        PATH=bare_path,
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    env.pop("VIRTUAL_ENV", None)
    server = subprocess.Popen(
        [
            str(BIN / "f0"),
            "lab",
            "--",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "lab.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    base = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "lab.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"f0 lab did not start on port {port}:\n{log}")
                time.sleep(0.3)
        yield base, token, root
    finally:
        stop(server)


def api(base: str, token: str, path: str, method: str = "GET", body: object = None) -> object:
    request = urllib.request.Request(
        f"http://{base}{path}",
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    if response.headers.get_content_type() == "application/json":
        return json.loads(body)
    return body.decode("utf-8", "replace")


def run_in_terminal(base: str, token: str, command: str, cwd: str, timeout: float = 90) -> str:
    """Open a JupyterLab terminal in ``cwd`` (relative to the lab's root, as JupyterLab's
    file browser asks), type ``command``, return what it printed up to the end."""
    name = api(base, token, "/api/terminals", "POST", {"cwd": cwd})["name"]
    ws = websocket.create_connection(
        f"ws://{base}/terminals/websocket/{name}?token={token}", timeout=timeout
    )
    marker = secrets.token_hex(4)
    try:
        ws.send(json.dumps(["stdin", f"{command}; echo END-$((0x{marker}))-\r"]))
        out = ""
        deadline = time.monotonic() + timeout
        done = f"END-{int(marker, 16)}-"
        while done not in out:
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never finished {command!r}:\n{out}")
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                out += message[1]
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    finally:
        ws.close()
        api(base, token, f"/api/terminals/{name}", "DELETE")


def test_f0_is_on_the_path_of_the_labs_own_terminal(learner_lab):
    base, token, root = learner_lab
    out = run_in_terminal(base, token, "command -v f0; f0 check module1", MODULE.id)
    assert str(BIN / "f0") in out, out
    assert "command not found" not in out
    assert "Fundamentals: the Context: 0 / 16" in out, out
    progress = json.loads((root / ".f0" / "progress.json").read_text())
    assert (
        progress["modules"]["module1"]["latest"]["notebook"]
        == f"work/{MODULE.id}/{MODULE.notebook}"
    )


def test_the_lab_serves_the_workspace_without_instructor_tools(learner_lab):
    base, token, root = learner_lab
    listing = api(base, token, "/api/contents/")
    names = {item["name"] for item in listing["content"]}
    assert names == {MODULE.id}, names  # work/: no solutions/, no autograder/
    assert (root / "work" / MODULE.id / MODULE.notebook).is_file()
    page = api(base, token, f"/lab/tree/{MODULE.id}/{MODULE.notebook}")
    config = json.loads(
        re.search(
            r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
        ).group(1)
    )
    disabled = set(config["disabledExtensions"])
    for plugin in ("create-assignment", "formgrader", "assignment-list", "course-list"):
        assert f"@jupyter/nbgrader:{plugin}" in disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
