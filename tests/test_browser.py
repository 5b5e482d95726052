"""Module 1 in a real browser: JupyterLab, headless Chromium, every cell run.

JupyterLab serves a temporary copy of the course on a free loopback port; Playwright drives
Debian's ``chromium`` (never a downloaded browser). The learner's notebook, module 1's
released exercise notebook with the exercises solved and a progress dashboard cell added,
must show the widgets and the visible tests' output, and the dashboard's check button must
grade it. It leaves a screenshot of the dashboard in build/test-artifacts/learner/ (and one of
any failure in build/test-artifacts/).
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
from pathlib import Path

import nbformat
import pytest
from course_tools import course, submission

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")

COURSE = course()
MODULE = COURSE.module("module1")
DASHBOARD_CELL = "from academy.dashboard import ProgressDashboard\n\nProgressDashboard()"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on the course copy: (base url, token, course root)."""
    root = tmp_path / "course"
    (root / "autograder").mkdir(parents=True)
    shutil.copy(COURSE.root / "course.yaml", root / "course.yaml")
    shutil.copy(COURSE.suite_path(MODULE), root / MODULE.suite)
    notebook = root / "exercises" / MODULE.id / MODULE.notebook
    notebook.parent.mkdir(parents=True)
    nb = submission(COURSE, MODULE)
    nb.cells.append(nbformat.v4.new_code_cell(DASHBOARD_CELL))
    nbformat.write(nb, notebook)
    # Every cell stays in the page (no virtual scrolling), so outputs can be found.
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notices = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    notices.mkdir(parents=True)  # no "get notified about Jupyter news?" toast over the page
    (notices / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "lab.log", "wb"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "lab.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"JupyterLab did not start on port {port}:\n{log}")
                time.sleep(0.3)
        yield base, token, root
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """Stop the server and its kernels (they share its process group)."""
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


RUN_ALL = """async () => {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    await panel.sessionContext.ready;
    await app.commands.execute('notebook:run-all-cells');
    return panel.content.widgets.length;
}"""


def test_module1_runs_in_jupyterlab_with_widgets_and_visible_tests(lab):
    base, token, root = lab
    url = f"{base}/lab/tree/exercises/{MODULE.id}/{MODULE.notebook}?token={token}"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(url, timeout=60_000)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext",
                timeout=60_000,
            )
            cells = page.evaluate(RUN_ALL)
            assert cells >= 40
            # The Context inspector widget from the demo cell, rendered by ipywidgets.
            inspector = page.locator(".jp-OutputArea-output .widget-button", has_text="set")
            inspector.first.wait_for(timeout=60_000)
            # The visible tests ran: exercise 1.2's test prints the description it checks.
            page.locator(
                ".jp-OutputArea-output", has_text="environment: development"
            ).first.wait_for(timeout=30_000)
            errors = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]')
            assert errors.count() == 0, errors.first.inner_text()
            # The progress dashboard, then a real check from its button.
            # Every grade cell checked the saved notebook with the hidden tests, in place.
            page.locator(
                ".jp-OutputArea-output", has_text="✓ Exercise 1.1: 2 / 2, every hidden check passes"
            ).first.wait_for(timeout=60_000)
            dashboard = page.locator(".f0-dashboard")
            dashboard.wait_for(timeout=30_000)
            assert "Bronze" in dashboard.inner_text()
            dashboard.locator(".widget-button", has_text="check").click()
            dashboard.get_by_text("module1: 16 / 16").wait_for(timeout=120_000)
            dashboard.get_by_text("✓ 16 / 16").first.wait_for(timeout=10_000)
            (ARTIFACTS / "learner").mkdir(parents=True, exist_ok=True)  # kept for people to see
            dashboard.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "learner" / "dashboard.png"))
            assert json.loads((root / ".f0" / "progress.json").read_text())["modules"]
        except Exception:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "test_browser-failure.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
            raise
        finally:
            browser.close()
