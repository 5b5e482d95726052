"""The learner lab of `make lab` (`f0 lab`): a real JupyterLab server on a course copy.

Its own terminal (started through the REST API and websocket, as JupyterLab's Terminal does)
finds `f0` even when the server's PATH lacks this environment (Jupyter used to start a login
shell, whose system profile reset PATH). The lab serves the learner's workspace, not the
course folder, and loads none of nbgrader's instructor plugins.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.request
from collections.abc import Iterator

import pytest
from course_tools import course
from lab_tools import BIN, Lab, learner_course, running_lab

websocket = pytest.importorskip("websocket")

COURSE = course()
MODULE = COURSE.module("module1")
pytestmark = pytest.mark.xdist_group("learner_lab")


@pytest.fixture
def learner_lab(tmp_path) -> Iterator[Lab]:
    """`f0 lab` on a course copy, with a PATH that does not hold this environment."""
    with running_lab(tmp_path, learner_course(tmp_path, COURSE, MODULE)) as lab:
        yield lab


def api(lab: Lab, path: str, method: str = "GET", body: object = None) -> object:
    request = urllib.request.Request(
        f"{lab.base}{path}",
        method=method,
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    if response.headers.get_content_type() == "application/json":
        return json.loads(body)
    return body.decode("utf-8", "replace")


def run_in_terminal(lab: Lab, command: str, cwd: str, timeout: float = 90) -> str:
    """Open a JupyterLab terminal in ``cwd`` (relative to the lab's root, as JupyterLab's
    file browser asks), type ``command``, return what it printed up to the end."""
    name = api(lab, "/api/terminals", "POST", {"cwd": cwd})["name"]
    ws = websocket.create_connection(
        lab.url(f"/terminals/websocket/{name}", scheme="ws"), timeout=timeout
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
        api(lab, f"/api/terminals/{name}", "DELETE")


def test_f0_is_on_the_path_of_the_labs_own_terminal(learner_lab):
    root = learner_lab.root
    out = run_in_terminal(learner_lab, "command -v f0; f0 check module1", MODULE.id)
    assert str(BIN / "f0") in out, out
    assert "command not found" not in out
    assert "Fundamentals: the Context: 0 / 16" in out, out
    progress = json.loads((root / ".f0" / "progress.json").read_text())
    assert (
        progress["modules"]["module1"]["latest"]["notebook"]
        == f"work/{MODULE.id}/{MODULE.notebook}"
    )


def test_the_lab_serves_the_workspace_without_instructor_tools(learner_lab):
    root = learner_lab.root
    listing = api(learner_lab, "/api/contents/")
    names = {item["name"] for item in listing["content"]}
    assert names == {MODULE.id}, names  # work/: no solutions/, no autograder/
    assert (root / "work" / MODULE.id / MODULE.notebook).is_file()
    page = api(learner_lab, f"/lab/tree/{MODULE.id}/{MODULE.notebook}")
    config = json.loads(
        re.search(
            r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
        ).group(1)
    )
    disabled = set(config["disabledExtensions"])
    for plugin in ("create-assignment", "formgrader", "assignment-list", "course-list"):
        assert f"@jupyter/nbgrader:{plugin}" in disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
