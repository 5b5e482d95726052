"""What runs on a Dask worker. Everything a task reads travels with it (a course bundle, a
student's files, a notebook); everything it produces goes back as its result. A task writes only
in a fresh folder under the worker's temporary directory, which it removes when done, so a task
run twice (its worker died; Dask ran it elsewhere) has no effect but its result.

The same trusted pipeline as on the instructor's machine runs inside: stock ``nbgrader
autograde`` with the course's ``jupyter_config.py`` (limits, sandbox and the hidden-suite step),
and ``run_hidden_suite`` for checks, so the sandboxing and trust rules hold on every worker.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from academy.service.bundle import digest, folder_files, materialise

__all__ = [
    "bundle_value",
    "autograde_student",
    "autograde_students",
    "check_notebook_task",
    "course_folder",
    "local_cluster_options",
]


def local_cluster_options(workers: int, scratch: str) -> dict[str, Any]:
    """``LocalCluster`` settings for grading: ``workers`` processes of one thread each (a
    task runs its own kernel and suite), on loopback, without a dashboard, and with their
    scratch folder in ``scratch``, this account's own (a shared /tmp/dask-scratch-space made
    by another account, on the hub root or a learner, would stop them)."""
    return {
        "n_workers": max(1, workers),
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
        "host": "127.0.0.1",
        "local_directory": scratch,
    }


_lock = threading.Lock()
_folders: OrderedDict[str, Path] = OrderedDict()  # bundle digest -> its folder, oldest first
KEPT_BUNDLES = 4  # course versions a worker keeps written out; older ones are removed


def course_folder(files: dict[str, bytes]) -> Path:
    """This worker's copy of a course bundle, written once per worker process and bundle.

    A long-lived worker sees a new bundle for every course change: it keeps the
    ``KEPT_BUNDLES`` most recently used, removes older ones, and removes the rest when the
    worker process exits, so its disk use stays bounded.
    """
    key = digest(files)
    with _lock:
        folder = _folders.get(key)
        if folder is None or not folder.is_dir():
            folder = Path(tempfile.mkdtemp(prefix=f"f0-course-{key[:12]}-"))
            materialise(files, folder)
            _folders[key] = folder
        _folders.move_to_end(key)
        while len(_folders) > KEPT_BUNDLES:
            _, old = _folders.popitem(last=False)
            shutil.rmtree(old, ignore_errors=True)
        return folder


@atexit.register
def _remove_course_folders() -> None:
    with _lock:
        while _folders:
            shutil.rmtree(_folders.popitem()[1], ignore_errors=True)


STALL_SECONDS = 1800.0  # no student finished for this long: nbgrader is stuck, stop it


def _stall_seconds() -> float:
    try:
        return float(os.environ.get("F0_GRADING_STALL_SECONDS", STALL_SECONDS))
    except ValueError:
        return STALL_SECONDS


def _watch(
    proc: subprocess.Popen, graded: Path, assignment: str, timeout: float, stall: float
) -> str:
    """Wait for nbgrader; kill it (its whole session) when it runs over ``timeout`` or when no
    student's graded folder appeared for ``stall`` seconds (seen once on a worker: nbgrader
    hung in pyzmq's context termination with no kernel left). Returns why it was stopped."""
    start = last = time.monotonic()
    seen = 0
    while True:
        try:
            proc.wait(timeout=0.5)  # returns the moment nbgrader ends
            return ""
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        count = len(list(graded.glob(f"*/{assignment}"))) if graded.is_dir() else 0
        if count != seen:
            seen, last = count, now
        if now - start > timeout or now - last > stall:
            os.killpg(proc.pid, 9)
            proc.wait()
            limit = "in total" if now - start > timeout else "without finishing a student"
            seconds = timeout if now - start > timeout else stall
            return f"\nnbgrader autograde stopped: it ran {seconds:g} s {limit}"


def bundle_value(files: dict[str, bytes]) -> dict[str, bytes]:
    """A course bundle as a Dask task of its own (``client.submit(bundle_value, files)``),
    rather than scattered data: when every worker holding it dies, Dask computes it again
    from the task (scattered data would be lost, and the tasks needing it with it; Dask's
    memory manager keeps one replica of scattered data even after a broadcast)."""
    return files


def _where(folder: Path) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "folder": str(folder)}


def autograde_student(
    course_files: dict[str, bytes],
    assignment: str,
    student: str,
    student_files: dict[str, bytes],
    nbgrader_args: tuple[str, ...] = (),
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Grade one student's submission (see ``autograde_students``)."""
    return autograde_students(
        course_files, assignment, {student: student_files}, nbgrader_args, timeout
    )[0]


def autograde_students(
    course_files: dict[str, bytes],
    assignment: str,
    submissions: dict[str, dict[str, bytes]],
    nbgrader_args: tuple[str, ...] = (),
    timeout: float = 3600.0,
) -> list[dict[str, Any]]:
    """Grade a batch of submissions (student -> their files) with stock ``nbgrader autograde``
    in a fresh folder holding only them: one nbgrader start-up for the batch. A student left
    without grades when nbgrader stopped early is graded once more, alone, so only a student
    who stops nbgrader goes ungraded.

    Returns one ``{"student", "status" ("graded"/"failed"), "rows" (the student's gradebook
    entries, for the one writer), "files" (``autograded/<student>/<assignment>/`` as bytes),
    "error", "seconds", "where"}`` per student, in the order given.
    """
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="f0-autograde-"))
    try:
        materialise(course_files, work)
        for student, files in submissions.items():
            materialise(
                {f"submitted/{student}/{assignment}/{k}": v for k, v in files.items()}, work
            )
        (work / "home").mkdir()
        # The results are read with nbgrader's Gradebook: import it (1.3 s on a fresh worker)
        # while nbgrader grades, not after.
        threading.Thread(
            target=importlib.import_module, args=("nbgrader.api",), daemon=True
        ).start()
        results = _run_nbgrader(work, assignment, list(submissions), nbgrader_args, timeout)
        if len(submissions) > 1:
            for number, result in enumerate(results):
                if result["status"] == "failed" and not (result["rows"] or {}).get("reason"):
                    results[number] = _run_nbgrader(
                        work, assignment, [result["student"]], nbgrader_args, timeout
                    )[0]
        seconds = (time.monotonic() - start) / max(1, len(results))
        for result in results:
            result["seconds"] = seconds
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_nbgrader(
    work: Path,
    assignment: str,
    students: list[str],
    nbgrader_args: tuple[str, ...],
    timeout: float,
) -> list[dict[str, Any]]:
    from academy.env import tool_env
    from academy.grading.parallel import _db_url, autograde_command, gradebook_rows, is_saved

    db = work / "gradebook.db"
    for student in students:  # graded now, by this run
        shutil.rmtree(work / "autograded" / student / assignment, ignore_errors=True)
    others = sorted(
        p.name for p in (work / "submitted").iterdir() if p.is_dir() and p.name not in students
    )
    command = autograde_command(
        assignment, others, db, f"--ScoreHiddenSuites.course_root={work}", *nbgrader_args
    )
    log_path = work / f"nbgrader-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=work,
            env=tool_env({"HOME": str(work / "home")}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        why = _watch(proc, work / "autograded", assignment, timeout, _stall_seconds())
    # only now: an import here, before nbgrader starts, would wait for the one
    # autograde_students began in a thread, and gain nothing from it
    from nbgrader.api import Gradebook

    output = log_path.read_text(encoding="utf-8", errors="replace") + why
    results = []
    with Gradebook(_db_url(db)) as gb:
        for student in students:
            folder = work / "autograded" / student / assignment
            rows = gradebook_rows(gb, assignment, student)
            graded = is_saved(gb, assignment, student) and folder.is_dir()
            results.append(
                {
                    "student": student,
                    "status": "graded" if graded else "failed",
                    "rows": rows,
                    "files": folder_files(folder, "") if graded else {},
                    "error": "" if graded else output[-2000:],
                    "seconds": 0.0,
                    "where": _where(work),
                }
            )
    return results


def check_notebook_task(
    course_files: dict[str, bytes],
    module_id: str,
    notebook: dict[str, Any],
    limits: dict[str, Any] | None = None,
    suite_timeout: float = 600.0,
) -> dict[str, Any]:
    """One learner check: ``run_hidden_suite`` on a worker; returns ``SuiteReport.to_json()``
    (scores, messages, load problems; never test code and never the suite's log)."""
    import nbformat

    from academy import manifest
    from academy.bridge.client import Limits
    from academy.grading.suite_runner import run_hidden_suite

    start = time.monotonic()
    folder = course_folder(course_files)
    course = manifest.load(folder)
    module = course.module(module_id)
    nb = nbformat.from_dict(notebook)
    report = run_hidden_suite(
        course, module, nb, Limits(**(limits or {})), suite_timeout, preload=True
    )
    data = report.to_json()
    data["seconds"] = round(time.monotonic() - start, 3)
    return data
