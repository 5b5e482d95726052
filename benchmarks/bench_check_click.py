"""Click to feedback in the learner lab: "Save and check 1.1" against `f0 check`, same run.

Builds a temporary learner course copy as tests/test_learner_lab.py's ``learner_lab`` fixture
does (course.yaml, module 1's hidden suite, exercises/module1), starts the learner lab
(``f0 lab``, with tests/lab_tools.py's ``running_lab``, every cell kept in the page) on it, and
drives Debian's /usr/bin/chromium with Playwright (never ``playwright install``). Module 1 is
opened, its setup cell and exercise 1.1's grade cell are run, then N rounds alternate a correct
exercise 1.1 and a broken one ("MyApp" -> "OtherApp"), set through JupyterLab's model (no
typing time). Each round measures, with the page's clock, the time from the click on "Save and
check 1.1" to the new result under the exercise (the old one gone). After each round, the
baseline: ``f0 check module1`` as a subprocess in the course copy on the notebook the click
just saved. Prints every round, the medians, the ratio click/CLI and the median click time
against the issue's goal (feedback within 3 s).

    python benchmarks/bench_check_click.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from course_tools import course, solution_sources  # noqa: E402
from lab_tools import BIN, NO_VIRTUAL_SCROLLING, learner_course, running_lab  # noqa: E402

from academy.env import tool_env  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
GOAL = 3.0  # seconds: "feedback for module 1 within 3 s of the click"
PASSED = r"✓ Exercise 1\.1: 2 / 2"
FAILED = r"✗ \[1\.1-[a-z]+"
TIMEOUT = 120  # seconds, for any single wait

RUN_CELL = """async (gradeId) => {
    const app = window.jupyterapp;
    const notebook = app.shell.currentWidget.content;
    notebook.activeCellIndex = notebook.widgets.findIndex(
        (c) => (c.model.getMetadata('nbgrader') || {}).grade_id === gradeId);
    await app.commands.execute('notebook:run-cell');
}"""
CELL_INDEX = """(gradeId) => window.jupyterapp.shell.currentWidget.content.widgets.findIndex(
    (c) => (c.model.getMetadata('nbgrader') || {}).grade_id === gradeId)"""
SET_SOURCE = """([gradeId, source]) => {
    const notebook = window.jupyterapp.shell.currentWidget.content;
    const cell = notebook.widgets.find(
        (c) => (c.model.getMetadata('nbgrader') || {}).grade_id === gradeId);
    cell.model.sharedModel.setSource(source);
}"""
# Armed before the click: notes the click on the grade cell's button (capture phase, before
# the button's own handler), then resolves, on the DOM mutation that completes it, with the
# milliseconds from that click to the wanted text in the cell's output, the old text gone.
WATCH = """([gradeId, wanted, gone, ms]) => {
    const notebook = window.jupyterapp.shell.currentWidget.content;
    const cell = notebook.widgets.find(
        (c) => (c.model.getMetadata('nbgrader') || {}).grade_id === gradeId);
    const want = new RegExp(wanted);
    const old = new RegExp(gone);
    let clicked = null;
    const onClick = (event) => {
        const button = event.target.closest && event.target.closest('.f0-check-one');
        if (clicked === null && button && cell.node.contains(button)) {
            clicked = performance.now();
        }
    };
    document.addEventListener('click', onClick, true);
    window.__f0Result = new Promise((resolve, reject) => {
        let observer = null;
        let timer = null;
        const finish = () => {
            observer.disconnect();
            clearTimeout(timer);
            document.removeEventListener('click', onClick, true);
        };
        const test = () => {
            const text = cell.outputArea.node.textContent;
            if (clicked !== null && want.test(text) && !old.test(text)) {
                finish();
                resolve(performance.now() - clicked);
            }
        };
        observer = new MutationObserver(test);
        observer.observe(cell.node, {childList: true, subtree: true, characterData: true});
        timer = setTimeout(() => {
            finish();
            reject(new Error('no result in ' + ms + ' ms: ' +
                cell.outputArea.node.textContent.slice(-600)));
        }, ms);
    });
}"""


def saved_solution(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    (source,) = (
        c.source
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "ex_1_1_solution"
    )
    return source


def cli_check(root: Path) -> tuple[float, str]:
    """`f0 check module1` in the course copy: seconds and its output (exit 1 = module not
    passed, expected with only exercise 1.1 done)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "f0"), "check", "module1"],
        cwd=root,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1) or "1.1" not in proc.stdout:
        raise RuntimeError(f"f0 check failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


def grade_cell(page):
    """Exercise 1.1's grade cell in the page."""
    index = page.evaluate(CELL_INDEX, "hidden_1_1")
    if index < 0:
        raise RuntimeError("no grade cell hidden_1_1 in the notebook")
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def click_and_wait(page, wanted: str, gone: str) -> tuple[float, float]:
    """(page clock, Playwright clock) seconds from the click to the new result."""
    page.evaluate(WATCH, ["hidden_1_1", wanted, gone, TIMEOUT * 1000])
    start = time.perf_counter()
    grade_cell(page).locator(".f0-check-one").click(timeout=TIMEOUT * 1000)
    in_page = page.evaluate("() => window.__f0Result") / 1000
    return in_page, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the lab
    c = course()
    module = c.module("module1")
    reference = solution_sources(c, module)["ex_1_1_solution"]
    correct = "\n".join(line for line in reference.split("\n") if "SOLUTION" not in line)
    broken = correct.replace('"MyApp"', '"OtherApp"')
    assert broken != correct, "the reference of exercise 1.1 no longer says MyApp"

    clicks: list[float] = []
    seen: list[float] = []
    clis: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-check-click-") as name:
        tmp = Path(name)
        root = learner_course(tmp, c, module)
        start = time.perf_counter()
        with running_lab(tmp, root, settings=NO_VIRTUAL_SCROLLING) as lab:
            lab_up = time.perf_counter() - start
            saved = root / "work" / module.id / module.notebook
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    page.set_default_timeout(TIMEOUT * 1000)
                    start = time.perf_counter()
                    page.goto(lab.url(f"/lab/tree/{module.id}/{module.notebook}"))
                    page.wait_for_function(
                        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                        " && window.jupyterapp.shell.currentWidget.sessionContext",
                        timeout=90_000,
                    )
                    page.evaluate(
                        "async () => {"
                        " await window.jupyterapp.shell.currentWidget.sessionContext.ready }"
                    )
                    for grade_id in ("setup_imports", "hidden_1_1"):
                        page.evaluate(RUN_CELL, grade_id)
                    grade_cell(page).get_by_text("is not started").wait_for()
                    grade_cell(page).locator(".f0-check-one").wait_for()
                    ready = time.perf_counter() - start
                    cli_check(root)  # warm-up, as the kernel warmed up on hidden_1_1
                    print(
                        f"module 1, exercise 1.1: {args.rounds} rounds, {os.cpu_count()} cores, "
                        f"load {os.getloadavg()[0]:.1f}; lab up in {lab_up:.1f} s, "
                        f"notebook ready in {ready:.1f} s"
                    )
                    for i in range(args.rounds):
                        good = i % 2 == 0
                        if good:
                            source, marker, wanted, gone = correct, '"MyApp"', PASSED, FAILED
                        else:
                            source, marker, wanted, gone = broken, '"OtherApp"', FAILED, PASSED
                        if i == 0:
                            gone = "is not started"
                        page.evaluate(SET_SOURCE, ["ex_1_1_solution", source])
                        click, pw_click = click_and_wait(page, wanted, gone)
                        if marker not in saved_solution(saved):
                            raise RuntimeError("the button did not save the notebook first")
                        cli, out = cli_check(root)
                        clicks.append(click)
                        seen.append(pw_click)
                        clis.append(cli)
                        print(
                            f"  round {i + 1} ({'correct' if good else 'broken '}): "
                            f"click to feedback {click:5.2f} s "
                            f"(Playwright {pw_click:5.2f} s), f0 check {cli:5.2f} s"
                        )
                finally:
                    browser.close()

    click, cli = statistics.median(clicks), statistics.median(clis)
    print(
        f"  median click to feedback : {click:6.2f} s (Playwright {statistics.median(seen):.2f} s)"
    )
    print(f"  median f0 check (CLI)    : {cli:6.2f} s")
    print(f"  ratio click / CLI        : {click / cli:6.2f}x")
    verdict = "within" if click <= GOAL else "over"
    print(
        f"  goal (feedback within {GOAL:g} s of the click): median {click:.2f} s, {verdict} "
        f"({click / GOAL:.0%} of the budget)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
