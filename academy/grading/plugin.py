"""The pytest plugin a hidden suite runs under, inside the trusted grading process.

It gives each test the ``learner`` fixture (a bridge to the learner's code in a bounded
worker process), turns every failure into learner-facing words, and writes one JSON report
that the grading step reads. Loaded with ``-p academy.grading.plugin``; it is never loaded
into the learner's process. For a folder suite it also loads the folder's ``_support.py``
(``--f0-support``) as a plugin of its own, so its session fixtures are shared by every file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from academy.bridge.client import (
    Learner,
    LearnerError,
    LearnerException,
    LearnerTimeout,
    Limits,
)
from academy.grading.cases import CaseFailed, load_support

RESULTS = pytest.StashKey[list[dict[str, Any]]]()  # every graded case's result, in order
MAX_TIMEOUTS = 2  # per exercise: after this many hangs, its remaining cases fail at once


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("f0", "Framework0 Academy hidden suites")
    group.addoption("--f0-cells", help="JSON file: the learner's code cells, in order")
    group.addoption("--f0-report", help="where to write the JSON report")
    group.addoption("--f0-limits", default="{}", help="JSON object of academy Limits fields")
    group.addoption("--f0-only", default="", help="comma-separated exercise ids to grade")
    group.addoption(
        "--f0-support",
        default="",
        help="a folder suite's _support.py: loaded as module _support, its fixtures shared",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "f0_case(exercise, points, message, rules, critical): a graded case"
    )
    config.stash[RESULTS] = []
    support = config.getoption("--f0-support")
    if support:  # before collection: the test files import it, and use its fixtures
        config.pluginmanager.register(load_support(Path(support)), "f0-support")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only = {e for e in config.getoption("--f0-only").split(",") if e}
    if not only:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("f0_case")
        (keep if marker and marker.kwargs["exercise"] in only else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture(scope="session")
def learner(request: pytest.FixtureRequest) -> Any:
    cells_file = request.config.getoption("--f0-cells")
    if not cells_file:
        pytest.fail("--f0-cells is required to grade learner code")
    cells = json.loads(Path(cells_file).read_text(encoding="utf-8"))
    limits = Limits(**json.loads(request.config.getoption("--f0-limits")))
    bridge = _BudgetedLearner(cells, limits)
    bridge.timeouts = {}
    request.session._f0_learner = bridge  # type: ignore[attr-defined]
    yield bridge
    bridge.close()


class _BudgetedLearner(Learner):
    """A Learner that gives up on an exercise after repeated hangs, so grading stays bounded.

    A hang costs only the exercise it happens in (a cell that hangs while loading is left
    out by ``Learner`` itself).
    """

    exercise: str = ""
    timeouts: dict[str, int]

    def _request(self, request: dict[str, Any]) -> Any:
        spent = self.timeouts.setdefault(self.exercise, 0)
        if spent >= MAX_TIMEOUTS:
            raise LearnerTimeout(
                f"not run: your code for this exercise hit the time limit "
                f"{spent} times in earlier checks"
            )
        try:
            return super()._request(request)
        except LearnerTimeout:
            self.timeouts[self.exercise] += 1
            raise


def pytest_runtest_call(item: pytest.Item) -> None:
    marker = item.get_closest_marker("f0_case")
    learner = getattr(item.session, "_f0_learner", None)
    if marker is not None and learner is not None:
        learner.exercise = marker.kwargs["exercise"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("f0_case")
    if marker is None:
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.config.stash[RESULTS].append(
            {
                "name": item.name,
                "exercise": marker.kwargs["exercise"],
                "points": marker.kwargs["points"],
                "message": marker.kwargs["message"],
                "rules": list(marker.kwargs.get("rules", ())),
                "critical": bool(marker.kwargs.get("critical", False)),
                "passed": report.passed,
                **_explain(call.excinfo.value if call.excinfo else None),
            }
        )


def _explain(exc: BaseException | None) -> dict[str, Any]:
    """Say what went wrong in the learner's terms, without quoting the hidden test."""
    if exc is None:
        return {"detail": "", "kind": "passed"}
    if isinstance(exc, CaseFailed):
        return {"detail": str(exc), "kind": "wrong"}
    if isinstance(exc, LearnerException):
        return {"detail": f"your code raised {exc}", "kind": "raised"}
    if isinstance(exc, LearnerTimeout):
        return {"detail": str(exc), "kind": "timeout"}
    if isinstance(exc, LearnerError):
        return {"detail": str(exc), "kind": "crashed"}
    if isinstance(exc, AssertionError):
        return {"detail": "", "kind": "wrong"}
    # An error in the trusted test itself, usually a learner value of an unexpected shape.
    return {
        "detail": f"your code's result could not be checked ({type(exc).__name__})",
        "kind": "unexpected",
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--f0-report")
    if not path:
        return
    learner_problems: list[dict[str, Any]] = []
    fixture = getattr(session, "_f0_learner", None)
    if fixture is not None:
        learner_problems = fixture.load_problems
    Path(path).write_text(
        json.dumps(
            {
                "cases": session.config.stash[RESULTS],
                "collected": session.testscollected,
                "exitstatus": int(exitstatus),
                "load_problems": learner_problems,
            }
        ),
        encoding="utf-8",
    )
