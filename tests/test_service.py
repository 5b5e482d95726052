"""f0 serve, through real HTTP on 127.0.0.1: the same report as a local check, tokens, rate
limits, bad input, a fair queue; the learner-side client; and the learner's hand-out holds no
hidden suite and no solution."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import nbformat
import pytest
from course_tools import ROOT, course, solution_sources, submission

from academy.build import tool_env

pytestmark = pytest.mark.xdist_group("service")

COURSE = course()
MODULE = COURSE.module("module1")
TOKENS = {
    "ana": "ana-token-0123456789",
    "ben": "ben-token-0123456789",
    "cai": "cai-token-0123456789",
    "dee": "dee-token-0123456789",
    "fay": "fay-token-0123456789",  # the fetched-notebook tests (their own rate budget)
    "gus": "gus-token-0123456789",
}
RATE = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """`f0 serve` on 127.0.0.1 with a one-worker LocalCluster (one check at a time: the queue
    order is what the tests see)."""
    folder = tmp_path_factory.mktemp("service")
    tokens = folder / "tokens.txt"
    tokens.write_text("".join(f"{lr} {tok}\n" for lr, tok in TOKENS.items()))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "academy.cli",
            "serve",
            "--tokens",
            str(tokens),
            "--port",
            str(port),
            "--workers",
            "1",
            "--rate",
            str(RATE),
            "--course",
            str(ROOT),
        ],
        cwd=folder,
        env=tool_env({"HOME": str(folder)}),
        stdout=open(folder / "serve.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (folder / "serve.log").read_text()
            try:
                if call(url, "GET", "/api/v1/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("f0 serve did not answer in 120 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def call(url, method, path, body=None, token=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def post_check(url, learner, nb):
    return call(
        url, "POST", "/api/v1/checks", {"module": MODULE.id, "notebook": nb}, TOKENS[learner]
    )


def wait_done(url, learner, job_id, seconds=600):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, job, _ = call(
            url, "GET", f"/api/v1/checks/{job_id}?wait=10", token=TOKENS[learner]
        )  # answered at the next state change
        assert status == 200, job
        if job["state"] not in ("queued", "running"):
            return job
    raise AssertionError(f"check {job_id} not done in {seconds} s")


def honest():
    return json.loads(nbformat.writes(submission(COURSE, MODULE)))


def stub():
    return json.loads(nbformat.writes(nbformat.read(COURSE.release_notebook(MODULE), 4)))


def suite_code_lines() -> set[str]:
    """Lines of the hidden suites that are code, not message text (no string literal): every
    file of every suite, a folder suite's exercise files and ``_support.py`` alike."""
    lines = set()
    for path in (p for module in COURSE.modules for p in COURSE.suite_files(module)):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if (
                len(line) >= 30
                and not re.search(r"[\"']", line)
                and not line.startswith(("#", "import ", "from "))
            ):
                lines.add(line)
    return lines


# --- the report -----------------------------------------------------------------------------


def test_honest_and_stub_notebooks_get_the_local_report(service):
    from academy.grading.suite_runner import run_hidden_suite

    status, job, headers = post_check(service, "ana", honest())
    assert status == 202 and job["state"] in ("queued", "running"), job
    assert headers["Location"].endswith(job["id"])
    done = wait_done(service, "ana", job["id"])
    assert done["state"] == "done", done
    assert done["report"]["score"] == 16 and done["report"]["max_points"] == 16

    status, job, _ = post_check(service, "ben", stub())
    done = wait_done(service, "ben", job["id"])
    report = done["report"]
    assert report["score"] == 0 and report["max_points"] == 16
    assert report["load_problems"], "the stub's NotImplementedError is reported"
    local = run_hidden_suite(COURSE, MODULE, nbformat.read(COURSE.release_notebook(MODULE), 4))
    assert {k: v["score"] for k, v in report["exercises"].items()} == {
        k: r.score for k, r in local.exercises.items()
    }
    text = json.dumps(done)
    assert "log" not in report
    leaked = [line for line in suite_code_lines() if line in text]
    assert not leaked, leaked[:3]
    # another learner cannot read it
    status, body, _ = call(service, "GET", f"/api/v1/checks/{job['id']}", token=TOKENS["ana"])
    assert status == 404 and "error" in body


def test_the_learner_client_returns_a_suite_report(service, monkeypatch):
    from academy.service import client

    monkeypatch.setenv("F0_SERVICE_URL", service)
    monkeypatch.setenv("F0_SERVICE_TOKEN", TOKENS["cai"])
    seen = []
    report = client.check_remotely(
        COURSE,
        MODULE,
        submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)),
        on_progress=seen.append,
    )
    assert report.score == 10 and report.max_points == 16
    assert report.exercises["1.5"].score == 0 and report.exercises["1.1"].score == 2
    assert seen and all("position" in s for s in seen)
    monkeypatch.setenv("F0_SERVICE_TOKEN", "wrong-token-0000000000")
    with pytest.raises(client.ServiceError, match="401"):
        client.check_remotely(COURSE, MODULE, submission(COURSE, MODULE))


# --- refusals ---------------------------------------------------------------------------------


def test_no_token_or_a_wrong_one_is_401(service):
    for token in (None, "nope-not-a-token-at-all"):
        status, body, headers = call(
            service, "POST", "/api/v1/checks", {"module": MODULE.id, "notebook": stub()}, token
        )
        assert status == 401 and "token" in body["error"]
        assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    status, body, _ = call(service, "GET", "/api/v1/checks/" + "0" * 32)
    assert status == 401


def test_bad_requests_get_one_clear_400(service):
    token = TOKENS["dee"]
    cases = [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"module": "module99", "notebook": stub()}).encode(), "unknown module"),
        (json.dumps({"module": MODULE.id, "notebook": "text"}).encode(), "notebook"),
        (json.dumps({"module": MODULE.id, "notebook": {"cells": 3}}).encode(), "not a valid"),
        (json.dumps({"notebook": stub()}).encode(), "unknown module"),
    ]
    for raw, words in cases:
        status, body, _ = call(service, "POST", "/api/v1/checks", raw=raw, token=token)
        assert status == 400, (raw[:40], body)
        assert set(body) == {"error"} and words in body["error"], body
    status, body, _ = call(service, "GET", "/api/v1/nothing", token=token)
    assert status == 404 and "error" in body


def test_over_the_rate_limit_is_429(service):
    token = TOKENS["dee"]  # dee's earlier refusals counted too: every check request does
    statuses = []
    for _ in range(RATE + 2):  # bounded: at most RATE + 2 requests
        status, body, headers = call(
            service, "POST", "/api/v1/checks", {"module": "module99", "notebook": {}}, token
        )
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1 and "a minute" in body["error"]
            break
    assert statuses[-1] == 429 and statuses.count(429) == 1, statuses


# --- fairness ---------------------------------------------------------------------------------


def test_one_learners_burst_does_not_starve_another(service):
    a_jobs = []
    for _ in range(5):
        status, job, _ = post_check(service, "ana", stub())
        assert status == 202, job
        a_jobs.append(job["id"])
    status, b_job, _ = post_check(service, "ben", stub())
    assert status == 202
    assert b_job["state"] == "queued" and b_job["position"] == 1, b_job  # next, not sixth
    status, a_last, _ = call(service, "GET", f"/api/v1/checks/{a_jobs[-1]}", token=TOKENS["ana"])
    assert a_last["state"] == "queued" and a_last["position"] > 1 and a_last["eta_seconds"] > 0
    b_done = wait_done(service, "ben", b_job["id"])
    a_done = [wait_done(service, "ana", j) for j in a_jobs]
    assert all(j["state"] == "done" and j["report"]["score"] == 0 for j in [b_done, *a_done])
    assert b_done["finished_seq"] < a_done[-1]["finished_seq"]
    assert b_done["finished_seq"] <= a_done[1]["finished_seq"]  # B right after A's first


# --- the learner's hand-out -----------------------------------------------------------------


def solution_lines() -> set[str]:
    """Distinctive lines of every reference solution region (curriculum/)."""
    lines = set()
    for module in COURSE.modules:
        released = "\n".join(
            c.source for c in nbformat.read(COURSE.release_notebook(module), 4).cells
        )
        for source in solution_sources(COURSE, module).values():
            for region in re.findall(r"### BEGIN SOLUTION(.*?)### END SOLUTION", source, re.S):
                for line in region.splitlines():
                    line = line.strip()
                    if len(line) >= 30 and not line.startswith("#") and line not in released:
                        lines.add(line)
    return lines


# Lines a suite shares with the platform's own helpers: Python, not a secret.
GENERIC = {
    "except LearnerException as exc:",
    "for key, value in items.items():",
    "shutil.rmtree(folder, ignore_errors=True)",
}


def public_text() -> str:
    """What learners get on purpose: the released notebooks, course.yaml (its hints quote
    solution lines on purpose), and the framework0 library."""
    parts = [(ROOT / "course.yaml").read_text(encoding="utf-8")]
    for module in COURSE.modules:
        nb = nbformat.read(COURSE.release_notebook(module), 4)
        parts += [c.source for c in nb.cells]
    parts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "framework0").rglob("*.py"))]
    return "\n".join(parts)


def fingerprints() -> set[str]:
    """Suite code and solution lines found nowhere a learner is meant to see them."""
    public = public_text()
    return {
        line
        for line in suite_code_lines() | solution_lines()
        if line not in public and line not in GENERIC
    }


def test_the_learner_handout_holds_no_suite_and_no_solution(tmp_path):
    from academy.service.handout import build_learner_handout

    out = build_learner_handout(COURSE, tmp_path / "handout")
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "course.yaml" in names and any(n.startswith("exercises/") for n in names)
    assert not any(n.startswith(("autograder/", "curriculum/", "solutions/")) for n in names)
    marks = fingerprints()
    assert len(marks) > 300  # the scan has plenty to find
    found = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        if path.suffix == ".ipynb":  # a notebook's cells, as the learner sees them
            text += "\n".join(c.source for c in nbformat.reads(text, 4).cells)
        for line in marks:
            if line in text:
                found.append((path.relative_to(out).as_posix(), line))
    assert not found, found[:20]
    # The scan would see a leak: any one file of any suite (each file of a folder suite on its
    # own), and a solution cell, put where learners get them.
    suites = [p for module in COURSE.modules for p in COURSE.suite_files(module)]
    assert any(p.parent.name == "module8" for p in suites), "module 8's folder suite is scanned"
    for path in suites:
        leak = path.read_text(encoding="utf-8")
        assert [line for line in marks if line in leak], f"the scan misses a leak of {path.name}"
    solution = "\n".join(solution_sources(COURSE, COURSE.module("module8")).values())
    assert [line for line in marks if line in solution], "the scan misses a leaked solution"


def test_the_installed_package_holds_no_suite_and_no_solution():
    """What `pip install` puts in site-packages: the packages pyproject.toml's
    ``[tool.setuptools]`` finds, and their package data (listed statically: building a wheel
    needs a newer setuptools than the course's environment may have, from the network)."""
    from setuptools import find_packages

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]
    packages = find_packages(str(ROOT), include=config["packages"]["find"]["include"])
    assert "academy" in packages and "framework0" in packages
    assert not [p for p in packages if p.split(".")[0] in ("autograder", "curriculum", "tests")]
    files = []
    for package in packages:
        folder = ROOT / package.replace(".", "/")
        files += sorted(folder.glob("*.py"))
        for pattern in config.get("package-data", {}).get(package, []):
            files += sorted(folder.glob(pattern))
    assert len(files) > 30
    marks = fingerprints()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        leaked = [line for line in marks if line in text]
        assert not leaked, (path, leaked[:3])


# --- the queue and the limiter, alone -----------------------------------------------------------


def test_the_fair_queue_serves_the_least_recently_served_learner_first():
    from academy.service.queue import FairQueue

    q = FairQueue()
    for i in range(5):
        q.push("A", f"A{i}")
    assert q.pop() == "A0"
    q.push("B", "B0")
    q.push("C", "C0")
    q.push("C", "C1")
    expected = ["B0", "C0", "A1", "C1", "A2", "A3", "A4"]
    assert q.order() == expected and q.position("C1") == 4 and q.position("zz") is None
    assert [q.pop() for _ in range(len(expected))] == expected and q.pop() is None


def test_the_rate_limiter_counts_a_sliding_minute():
    from academy.service.queue import RateLimiter

    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.allow("a") == 0 and limiter.allow("a") == 0
    assert limiter.allow("a") == pytest.approx(60.0) and limiter.allow("b") == 0
    now[0] = 30.0
    assert limiter.allow("a") == pytest.approx(30.0)
    now[0] = 60.5
    assert limiter.allow("a") == 0


def test_f0_check_grades_on_the_service_when_one_is_configured(service, monkeypatch, tmp_path):
    """The learner's check goes to the service: a refused token is the service's answer."""
    from academy.learner.checking import check_notebook
    from academy.service.client import ServiceError

    path = tmp_path / MODULE.notebook
    nbformat.write(submission(COURSE, MODULE), path)
    monkeypatch.setenv("F0_SERVICE_URL", service)
    monkeypatch.setenv("F0_SERVICE_TOKEN", "wrong-token-0000000000")
    with pytest.raises(ServiceError, match="401"):
        check_notebook(COURSE, MODULE, path, record=False)


# --- a fetched notebook (the hub's learners): no course folder, the published manifest ------


def fetched_home(tmp_path, nb):
    """A learner's home as the hub leaves it: ``module1/<notebook>`` as fetched, and the
    course manifest published in the learners' configuration folder; no suite anywhere."""
    from academy.learner.published import write_published_course

    config = tmp_path / "etc-learner"
    published = write_published_course(config, COURSE)
    home = tmp_path / "home"
    (home / MODULE.id).mkdir(parents=True)
    nbformat.write(nb, home / MODULE.id / MODULE.notebook)
    assert sorted(p.name for p in published.parent.iterdir()) == ["course.yaml"]
    return config, home


def test_a_fetched_notebooks_grade_cells_check_it_on_the_service(
    service, monkeypatch, tmp_path, capsys
):
    """The hub's learner: the grade cell finds the published course, the service grades the
    saved notebook (1.5 unsolved: 10 / 16), and nothing is recorded in the learner's home."""
    from academy.learner import incell

    config, home = fetched_home(tmp_path, submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)))
    folder = home / MODULE.id
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(config))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("F0_SERVICE_URL", raising=False)
    assert incell.learner_notebook(MODULE.id, folder) is None  # no service: nothing to check
    monkeypatch.setenv("F0_SERVICE_URL", service)
    monkeypatch.setenv("F0_SERVICE_TOKEN", TOKENS["fay"])
    found = incell.learner_notebook(MODULE.id, folder)
    assert found is not None and found[2] == folder / MODULE.notebook
    assert found[0].root == config / "framework0-academy" / "course"
    monkeypatch.chdir(folder)
    incell.check_exercise(MODULE.id, "1.1")
    assert "✓ Exercise 1.1: 2 / 2" in capsys.readouterr().out
    with pytest.raises(incell.ExerciseNotPassed, match="Exercise 1.5 is not started"):
        incell.check_exercise(MODULE.id, "1.5")
    assert not list(tmp_path.rglob(".f0")), "a fetched notebook's check recorded progress"


def test_f0_check_and_nbgrader_validate_on_a_fetched_notebook_use_the_service(service, tmp_path):
    """From the learner's terminal: `f0 check module1` in the home checks the fetched notebook
    on the service; stock `nbgrader validate` runs the grade cells, which do the same."""
    config, home = fetched_home(tmp_path, submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)))
    env = tool_env(
        {
            "HOME": str(home),
            "JUPYTER_CONFIG_PATH": str(config),
            "F0_SERVICE_URL": service,
            "F0_SERVICE_TOKEN": TOKENS["gus"],
        }
    )
    f0 = [sys.executable, "-m", "academy.cli"]
    proc = subprocess.run(
        [*f0, "check", "module1", "--json"], cwd=home, env=env, capture_output=True, text=True
    )
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["score"] == 10 and report["exercise_status"]["1.5"] == "not started"
    nbgrader = [sys.executable, "-m", "nbgrader", "validate"]
    notebook = home / MODULE.id / MODULE.notebook
    half = subprocess.run(
        [*nbgrader, str(notebook)], cwd=home, env=env, capture_output=True, text=True, timeout=300
    )
    output = half.stdout + half.stderr
    assert "Success" not in output and "Exercise 1.5 is not started" in output, output
    nbformat.write(submission(COURSE, MODULE), notebook)
    solved = subprocess.run(
        [*nbgrader, str(notebook)], cwd=home, env=env, capture_output=True, text=True, timeout=300
    )
    assert "Success! Your notebook passes all the tests." in solved.stdout, (
        solved.stdout + solved.stderr
    )
    no_service = {k: v for k, v in env.items() if k != "F0_SERVICE_URL"}
    refused = subprocess.run(
        [*f0, "check", "module1"], cwd=home, env=no_service, capture_output=True, text=True
    )
    said = refused.stdout + refused.stderr
    assert refused.returncode == 2 and "no course.yaml in" in said, said
