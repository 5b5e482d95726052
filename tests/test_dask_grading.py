"""f0 autograde on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1, the workers in folders of their own that cannot see the course, one of them killed
mid-run; every student is graded once, with the deserved score."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from course_tools import ROOT, course, run, submission

from academy.build import copy_course, tool_env
from academy.grading.parallel import worker_slots

pytestmark = pytest.mark.xdist_group("dask_grading")

COURSE = course()
MODULE = COURSE.module("module1")
F0 = [sys.executable, "-m", "academy.cli"]
BIN = Path(sys.executable).parent

SUBMISSIONS = {
    "ana": (lambda: submission(COURSE, MODULE), 16.0),
    "ben": (lambda: submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)), 10.0),
    "cai": (lambda: submission(COURSE, MODULE), 16.0),
    "dee": (lambda: nbformat.read(COURSE.release_notebook(MODULE), as_version=4), 0.0),
    "eve": (lambda: submission(COURSE, MODULE), 16.0),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_hide_paths() -> bool:
    """Root with a private mount namespace: workers can be made blind to the course."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True
    )
    return probe.returncode == 0


def start_worker(address: str, folder: Path, name: str, hide: list[Path]) -> subprocess.Popen:
    """`dask worker` with its cwd, HOME and TMPDIR in ``folder``; in a mount namespace where
    every path of ``hide`` is an empty tmpfs (folders) or /dev/null (files), when possible."""
    (folder / "tmp").mkdir(parents=True)
    worker = [
        str(BIN / "dask"),
        "worker",
        address,
        "--nthreads",
        "1",
        "--no-nanny",
        "--no-dashboard",
        "--host",
        "127.0.0.1",
        "--name",
        name,
        "--local-directory",
        str(folder),
        "--death-timeout",
        "60",
    ]
    if can_hide_paths():
        mounts = " && ".join(
            f"mount -t tmpfs none '{p}'" if p.is_dir() else f"mount --bind /dev/null '{p}'"
            for p in hide
            if p.exists()
        )
        command = ["unshare", "-m", "sh", "-c", f'{mounts} && exec "$@"', "sh", *worker]
    else:
        command = worker
    env = tool_env(
        {"HOME": str(folder), "TMPDIR": str(folder / "tmp"), "F0_GRADING_STALL_SECONDS": "45"}
    )
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=open(folder / "worker.log", "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def scores(root: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        found = {}
        for student in SUBMISSIONS:
            sub = gb.find_submission(MODULE.id, student)
            grades = [g for nb in sub.notebooks for g in nb.grades]
            assert all(g.auto_score is not None and not g.needs_manual_grade for g in grades)
            found[student] = sub.score
        assert len(gb.assignment_submissions(MODULE.id)) == len(SUBMISSIONS)
        return found


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


def tasks_in(folder: Path) -> set[str]:
    try:
        return {p.name for p in (folder / "tmp").iterdir() if p.name.startswith("f0-autograde-")}
    except FileNotFoundError:
        return set()


@pytest.mark.slow
def test_grading_on_a_real_cluster_survives_a_killed_worker(tmp_path):
    root = copy_course(COURSE, _mk(tmp_path))
    assert run(["nbgrader", "generate_assignment", MODULE.id, "--force"], root).returncode == 0
    for student, (build, _) in SUBMISSIONS.items():
        folder = root / "submitted" / student / MODULE.id
        folder.mkdir(parents=True)
        nbformat.write(build(), folder / MODULE.notebook)

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    far = tmp_path / "cluster"
    far.mkdir()
    scheduler = subprocess.Popen(
        [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        cwd=far,
        env=tool_env({"HOME": str(far)}),
        stdout=open(far / "scheduler.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # The workers cannot see this course, nor the repository's suites and notebooks.
    hide = [
        root,
        ROOT / "autograder",
        ROOT / "curriculum",
        ROOT / "exercises",
        ROOT / "solutions",
        ROOT / "course.yaml",
        ROOT / "gradebook.db",
    ]
    workers = {}
    grading = None
    try:
        wait_for(lambda: _listening(port), 60, "the scheduler")
        for name in ("w1", "w2"):
            workers[name] = start_worker(address, far / name, name, hide)
        wait_for(lambda: _workers(address) >= 2, 120, "two workers")
        if can_hide_paths():  # the workers' view: the course folder is an empty tmpfs
            for proc in workers.values():
                mounts = _mountinfo(proc.pid)
                assert f" {root} " in mounts and f" {ROOT / 'autograder'} " in mounts, mounts

        grading = subprocess.Popen(
            [*F0, "autograde", MODULE.id, "--scheduler", address],
            cwd=root,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen = {"w1": set(), "w2": set()}

        def w1_busy() -> bool:
            for name in seen:
                seen[name] |= tasks_in(far / name)
            return bool(tasks_in(far / "w1"))

        wait_for(w1_busy, 300, "worker w1 to start grading a student")
        time.sleep(1.0)  # nbgrader is running inside the task now
        killed_mid_task = bool(tasks_in(far / "w1"))
        stop(workers["w1"])  # the worker's process group; its nbgrader has a session of its own
        assert killed_mid_task
        # ... and ends with the worker (academy.env.die_with_parent), kernels and all
        wait_for(lambda: not _processes_in(far / "w1"), 60, "w1's grading processes to end")

        deadline = time.monotonic() + 900
        while grading.poll() is None and time.monotonic() < deadline:
            seen["w2"] |= tasks_in(far / "w2")
            time.sleep(0.2)
        assert grading.poll() is not None, "grading did not finish in 15 minutes"
        output = grading.stdout.read()
        assert grading.returncode == 0, output
    finally:
        if grading is not None and grading.poll() is None:
            grading.kill()
            grading.wait()
        for proc in workers.values():
            stop(proc)
        stop(scheduler)

    assert scores(root) == {s: expected for s, (_, expected) in SUBMISSIONS.items()}
    for student in SUBMISSIONS:  # each student listed once in the summary
        assert (
            sum(
                line.split("│")[1].strip() == student
                for line in output.splitlines()
                if line.count("│") > 2
            )
            == 1
        ), output
        assert (root / "autograded" / student / MODULE.id / MODULE.notebook).is_file()
    assert seen["w2"], "worker w2 graded nothing"
    # The workers graded in their own folders and left nothing behind.
    assert not tasks_in(far / "w2")


@pytest.mark.parametrize(
    ("nthreads", "slots"),
    [
        ({"tcp://b:2": 1, "tcp://a:1": 1}, ["tcp://a:1", "tcp://b:2"]),
        ({"a": 2, "b": 2}, ["a", "b", "a", "b"]),  # the first two batches on two workers
        ({"a": 3, "b": 1}, ["a", "b", "a", "a"]),
        ({}, []),
    ],
)
def test_batches_go_to_the_workers_in_turn(nthreads, slots):
    """Batch n's first choice of worker (a loose restriction): one slot per thread, the
    workers taken in turn, so the first batches never queue on one worker beside the bundle
    (the killed-worker test shows a batch whose worker died still runs elsewhere)."""
    assert worker_slots(nthreads) == slots


def _mk(tmp_path: Path) -> Path:
    path = tmp_path / "course"
    path.mkdir()
    return path


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _workers(address: str) -> int:
    from distributed import Client

    try:
        with Client(address, timeout="5s") as client:
            return len(client.scheduler_info()["workers"])
    except OSError:
        return 0


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is inside ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if proc.name.isdigit() and (cwd == str(folder) or cwd.startswith(f"{folder}/")):
            found.append(int(proc.name))
    return found


def _mountinfo(pid: int) -> str:
    """The mount table of ``pid``'s process group leader's exec'd worker (same namespace)."""
    return Path(f"/proc/{pid}/mountinfo").read_text()
