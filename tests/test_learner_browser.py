"""A learner in the learner lab (`f0 lab`), in Chromium: check an exercise from inside the notebook.

Playwright drives Debian's ``chromium``. The learner opens module 1 in their workspace, sees
Validate refuse the untouched notebook, runs the notebook, types exercise 1.1, clicks "Save
and check 1.1" and reads the result under the exercise; breaks it and reads the failing
behaviour with its rule id; asks for a hint; runs ``f0 check module1`` in JupyterLab's own
terminal. Screenshots of the results go to build/test-artifacts/learner/ (git-ignored).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from course_tools import course, solution_sources
from lab_tools import NO_VIRTUAL_SCROLLING, Lab, learner_course, running_lab

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "learner"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

COURSE = course()
MODULE = COURSE.module("module1")
pytestmark = [pytest.mark.xdist_group("learner_lab"), pytest.mark.slow]

RUN_CELL = """async (index) => {
    const app = window.jupyterapp;
    app.shell.currentWidget.content.activeCellIndex = index;
    await app.commands.execute('notebook:run-cell');
}"""
CELL_INDEX = """(gradeId) => {
    const notebook = window.jupyterapp.shell.currentWidget.content;
    return notebook.widgets.findIndex((cell) => {
        const meta = cell.model.getMetadata('nbgrader') || {};
        return meta.grade_id === gradeId;
    });
}"""


@pytest.fixture
def learner_lab(tmp_path) -> Iterator[Lab]:
    """`f0 lab` on a course copy (as in test_learner_lab.py), every cell kept in the page."""
    root = learner_course(tmp_path, COURSE, MODULE)
    with running_lab(tmp_path, root, settings=NO_VIRTUAL_SCROLLING) as lab:
        yield lab


def cell(page, grade_id: str):
    index = page.evaluate(CELL_INDEX, grade_id)
    assert index >= 0, f"no cell {grade_id}"
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def type_into(page, grade_id: str, source: str) -> None:
    """Replace a cell's code by typing, as a learner does (CodeMirror gets real key events)."""
    editor = cell(page, grade_id).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    for line in source.split("\n"):
        page.keyboard.insert_text(line.strip("\n"))
        page.keyboard.press("Enter")
        page.keyboard.press("Home")
        page.keyboard.press("Shift+Home")  # drop the editor's auto-indent before the next line
        page.keyboard.press("Delete")


def saved_solution(root: Path) -> str:
    """Exercise 1.1's code in the learner's notebook file, as saved."""
    nb = nbformat.read(root / "work" / MODULE.id / MODULE.notebook, as_version=4)
    (source,) = (
        c.source
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "ex_1_1_solution"
    )
    return source


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def test_a_learner_checks_exercise_1_1_from_the_notebook(learner_lab):
    root = learner_lab.root
    reference = solution_sources(COURSE, MODULE)["ex_1_1_solution"]
    code = "\n".join(
        line for line in reference.split("\n") if "SOLUTION" not in line and line.strip()
    )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(learner_lab.url(f"/lab/tree/{MODULE.id}/{MODULE.notebook}"))
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext",
                timeout=90_000,
            )
            page.evaluate(
                "async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready }"
            )
            # No instructor tools: no Nbgrader menu, no Formgrader, no news pop-up.
            assert page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").count() == 0
            assert page.locator(".jp-Notification-Toast").count() == 0

            # 1. Validate cannot say success for the untouched notebook.
            page.locator(".jp-NotebookPanel-toolbar").get_by_text("Validate", exact=True).click()
            dialog = page.locator(".jp-Dialog")
            dialog.wait_for(timeout=180_000)
            page.wait_for_function(
                "() => !document.querySelector('.jp-Dialog').innerText.includes('Validating')",
                timeout=180_000,
            )
            said = dialog.inner_text()
            screenshot(page, "validate-untouched")
            assert "Success" not in said and "passes all the tests" not in said, said
            page.keyboard.press("Escape")

            # 2. Run the setup cell and exercise 1.1's check: it draws the check buttons.
            for grade_id in ("setup_imports", "hidden_1_1"):
                page.evaluate(RUN_CELL, page.evaluate(CELL_INDEX, grade_id))
            grade = cell(page, "hidden_1_1")
            grade.get_by_text("is not started").wait_for(timeout=120_000)
            grade.locator(".f0-check-one").wait_for(timeout=20_000)

            # 3. Type exercise 1.1 and check it with one click (the button saves first).
            type_into(page, "ex_1_1_solution", code)
            started = time.perf_counter()
            grade.locator(".f0-check-one").click()
            grade.get_by_text(re.compile(r"✓ Exercise 1\.1: 2 / 2")).wait_for(timeout=120_000)
            click_to_feedback = time.perf_counter() - started
            screenshot(page, "check-passed")
            assert '"MyApp"' in saved_solution(root)  # the button saved before checking

            # 4. Break it: the failing behaviour, led by its rule id, under the exercise.
            type_into(page, "ex_1_1_solution", code.replace('"MyApp"', '"OtherApp"'))
            grade.locator(".f0-check-one").click()
            failing = grade.get_by_text(re.compile(r"✗ \[1\.1-[a-z]+"))
            failing.first.wait_for(timeout=120_000)
            assert '"OtherApp"' in saved_solution(root)
            assert "✓ Exercise 1.1" not in grade.inner_text()
            # 5. The next hint, on demand.
            grade.locator(".f0-hint").click()
            assert grade.locator(".f0-hints li").count() == 1
            assert MODULE.exercise("1.1").hints[0][:30] in grade.inner_text()
            screenshot(page, "check-failing-with-hint")

            # 6. f0 check in JupyterLab's own terminal.
            page.evaluate(
                "async () => { await window.jupyterapp.commands.execute('terminal:create-new') }"
            )
            terminal = page.locator(".jp-Terminal").last
            terminal.wait_for(timeout=60_000)
            deadline = time.monotonic() + 60  # bash's prompt: typing earlier loses keys
            while time.monotonic() < deadline and not re.search(
                r"[#$]\s*$", terminal.inner_text().rstrip() + " "
            ):
                time.sleep(0.3)
            terminal.click()
            page.keyboard.type(f"f0 check {MODULE.id} > terminal-check.txt 2>&1; echo done\n")
            out = root / "terminal-check.txt"  # the terminal starts in the course folder
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "1.5" not in (
                out.read_text(encoding="utf-8") if out.exists() else ""
            ):
                time.sleep(0.5)
            text = out.read_text(encoding="utf-8")
            assert "command not found" not in text and "1.1" in text, text
            print(f"click to feedback: {click_to_feedback:.1f} s")
        except Exception:
            screenshot(page, "failure")
            raise
        finally:
            browser.close()
