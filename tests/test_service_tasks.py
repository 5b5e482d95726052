"""academy.service.tasks: what a Dask worker keeps on disk between tasks, and how it watches
the nbgrader run of a task (done the moment nbgrader ends; stopped when it stalls or runs
over its time)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from academy.service import tasks


def test_a_worker_keeps_a_bounded_number_of_course_versions(monkeypatch, tmp_path):
    monkeypatch.setattr(tasks, "_folders", type(tasks._folders)())
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tasks.tempfile, "tempdir", None)
    bundles = [{"course.yaml": f"version {n}\n".encode()} for n in range(tasks.KEPT_BUNDLES + 2)]
    first = tasks.course_folder(bundles[0])
    assert (first / "course.yaml").read_bytes() == b"version 0\n"
    assert tasks.course_folder(bundles[0]) == first  # written once per bundle
    folders = [tasks.course_folder(bundle) for bundle in bundles[1:]]
    kept = sorted(p for p in tmp_path.iterdir() if p.name.startswith("f0-course-"))
    assert len(kept) == tasks.KEPT_BUNDLES
    assert not first.exists() and not folders[0].exists()  # the two least recently used
    assert all(folder.is_dir() for folder in folders[1:])
    tasks._remove_course_folders()  # at the worker's exit
    assert not any(p.name.startswith("f0-course-") for p in tmp_path.iterdir())


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_the_watch_ends_when_nbgrader_ends_without_a_pause(tmp_path, monkeypatch):
    """It waits on the process itself: no pause longer than subprocess's own polling (at most
    0.05 s) stands between nbgrader's end and the task's results."""
    pauses: list[float] = []
    sleep = tasks.time.sleep

    def recorded(seconds):
        pauses.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(tasks.time, "sleep", recorded)
    proc = start("import time; time.sleep(0.7)")
    assert tasks._watch(proc, tmp_path / "autograded", "module1", 60.0, 60.0) == ""
    assert proc.returncode == 0
    assert max(pauses, default=0.0) <= 0.05, pauses


@pytest.mark.parametrize(
    ("timeout", "stall", "says"),
    [(60.0, 1.0, "ran 1 s without finishing a student"), (1.0, 60.0, "ran 1 s in total")],
)
def test_the_watch_stops_an_nbgrader_that_stalls_or_runs_over(tmp_path, timeout, stall, says):
    proc = start("import time; time.sleep(120)")
    why = tasks._watch(proc, tmp_path / "autograded", "module1", timeout, stall)
    assert says in why
    assert proc.returncode == -9  # killed, with its session


def test_a_student_finishing_keeps_the_watch_from_calling_it_a_stall(tmp_path):
    """Each new graded folder restarts the stall clock; the run then ends on its own."""
    graded = tmp_path / "autograded"
    code = (
        "import pathlib, time\n"
        f"for n in range(4):\n    time.sleep(0.6)\n"
        f"    pathlib.Path({str(graded)!r}, f's{{n}}', 'module1').mkdir(parents=True)\n"
    )
    proc = start(code)
    assert tasks._watch(proc, graded, "module1", 60.0, 1.5) == ""
    assert proc.returncode == 0


GATED_IMPORT = """
import subprocess, sys, threading
from pathlib import Path
from academy.service import tasks

started = threading.Event()

class Gate:  # nbgrader.api may be imported only once nbgrader has been started
    def find_spec(self, name, path=None, target=None):
        if name == "nbgrader.api" and not started.wait(5):
            raise ImportError("nbgrader.api was imported before nbgrader started")
        return None

sys.meta_path.insert(0, Gate())
popen = subprocess.Popen
def recorded(*args, **kwargs):
    started.set()
    return popen([sys.executable, "-c", "pass"], **{k: v for k, v in kwargs.items()
                 if k in ("cwd", "stdout", "stderr", "start_new_session")})
subprocess.Popen = recorded
work = Path(sys.argv[1])
(work / "submitted" / "alice" / "module1").mkdir(parents=True)
result = tasks._run_nbgrader(work, "module1", ["alice"], (), 60.0)
print(result[0]["student"], result[0]["status"])
"""


def test_a_task_imports_the_gradebook_while_nbgrader_grades_not_before(tmp_path):
    """autograde_students imports nbgrader.api (1.3 s on a fresh worker) in a thread while
    nbgrader grades; an import of it before nbgrader starts would wait for that thread, and
    the overlap would be lost. In a fresh interpreter, nbgrader.api cannot be imported until
    nbgrader has been started."""
    done = subprocess.run(
        [sys.executable, "-c", GATED_IMPORT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["alice", "failed"]  # nothing was graded: no gradebook
