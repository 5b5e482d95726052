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
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from course_tools import course, submission
from lab_tools import NO_NEWS, NO_VIRTUAL_SCROLLING, Lab, running_lab

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


@pytest.fixture
def lab(tmp_path) -> Iterator[Lab]:
    """Stock JupyterLab serving a course copy whose module 1 notebook is solved, with a
    progress dashboard cell added."""
    root = tmp_path / "course"
    (root / "autograder").mkdir(parents=True)
    shutil.copy(COURSE.root / "course.yaml", root / "course.yaml")
    shutil.copy(COURSE.suite_path(MODULE), root / MODULE.suite)
    notebook = root / "exercises" / MODULE.id / MODULE.notebook
    notebook.parent.mkdir(parents=True)
    nb = submission(COURSE, MODULE)
    nb.cells.append(nbformat.v4.new_code_cell(DASHBOARD_CELL))
    nbformat.write(nb, notebook)
    settings = {**NO_VIRTUAL_SCROLLING, **NO_NEWS}
    with running_lab(tmp_path, root, learner=False, settings=settings) as server:
        yield server


RUN_ALL = """async () => {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    await panel.sessionContext.ready;
    await app.commands.execute('notebook:run-all-cells');
    return panel.content.widgets.length;
}"""


def test_module1_runs_in_jupyterlab_with_widgets_and_visible_tests(lab):
    root = lab.root
    url = lab.url(f"/lab/tree/exercises/{MODULE.id}/{MODULE.notebook}")
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
