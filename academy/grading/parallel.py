"""Grade every submission of an assignment in parallel, with one writer to the gradebook.

nbgrader's SQLite gradebook does not tolerate concurrent writers, so each worker runs stock
``nbgrader autograde`` on a batch of students against a private copy of the gradebook; this
process, the only writer of the real gradebook, reads the running batches' copies every second
and copies each student's grades into it as soon as they are there (nbgrader saves a student's
flag just before the grades, so saved grades are complete). Batches keep nbgrader's start-up
cost (about 2 s per process) from eating the gain; progress is still reported per student, and
an interrupted run keeps every student already graded: running again grades only the students
not yet saved (``force`` regrades all).

One student never costs another their grade. A notebook nbgrader cannot grade fails alone:
``GuardSubmission`` (``academy/grading/sanitize.py``) sets it aside inside nbgrader, flagged,
with a one-line reason in the gradebook that is reported here (status ``failed``, the reason
as its error). And whatever else makes an nbgrader process stop early, each student of its
batch left without grades is graded once more in a batch of their own, so only the student
that stops nbgrader stays ungraded.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from academy.env import tool_env

if TYPE_CHECKING:
    from nbgrader.api import Gradebook

# nbgrader (with SQLAlchemy and its server extension) is imported where a gradebook is opened,
# not with this module: ``f0 autograde`` starts its batches first and imports it meanwhile,
# instead of holding every batch back for its 1.5 s of CPU.

__all__ = [
    "ParallelGrader",
    "StudentResult",
    "autograde_command",
    "grade_in_parallel",
    "grade_on_dask",
    "gradebook_rows",
    "is_saved",
    "save_rows",
    "saved_students",
    "submitted_students",
    "worker_slots",
]


@dataclass
class StudentResult:
    student: str
    status: str  # "graded", "skipped" (already saved), "failed" (nbgrader could not grade)
    score: float | None = None
    max_score: float | None = None
    flagged: bool = False
    seconds: float = 0.0
    error: str = ""


def submitted_students(root: Path, assignment: str) -> list[str]:
    base = root / "submitted"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / assignment).is_dir())


def _db_url(path: Path) -> str:
    return f"sqlite:///{path}"


def is_saved(gb: Gradebook, assignment: str, student: str) -> bool:
    from nbgrader.api import MissingEntry

    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return False
    grades = [g for nb in submission.notebooks for g in nb.grades]
    return bool(grades) and all(g.auto_score is not None for g in grades)


# A student is saved when they have grades and every grade has its auto score: is_saved, as
# one query. The private gradebooks are read every POLL_SECONDS while nbgrader writes them, so
# this reads them with sqlite3, read-only, rather than opening an nbgrader Gradebook each time
# (0.1 s of CPU per poll, a tenth of a core for the whole run).
_SAVED = """
SELECT sa.student_id FROM submitted_assignment sa
JOIN assignment a ON a.id = sa.assignment_id
JOIN submitted_notebook sn ON sn.assignment_id = sa.id
JOIN grade g ON g.notebook_id = sn.id
WHERE a.name = ?
GROUP BY sa.student_id
HAVING COUNT(g.id) > 0 AND SUM(g.auto_score IS NULL) = 0
"""


def saved_students(db: Path, assignment: str) -> set[str]:
    """Every student whose grades for ``assignment`` are saved in gradebook ``db`` (read-only;
    raises ``sqlite3.Error`` when it cannot be read)."""
    connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    try:
        return {row[0] for row in connection.execute(_SAVED, (assignment,))}
    finally:
        connection.close()


def _saved_in(private: Path, assignment: str, students: list[str]) -> list[str]:
    """The students whose grades a running batch has saved in its private gradebook."""
    if not students:
        return []
    try:
        saved = saved_students(private, assignment)
    except sqlite3.Error:  # the batch is writing; read again at the next poll
        return []
    return [s for s in students if s in saved]


@contextmanager
def _quiet() -> Iterator[None]:
    """nbgrader's ``add_submission`` warns (SAWarning, autoflush) on every new submission."""
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        yield


def _not_graded(gb: Gradebook, assignment: str, student: str) -> str:
    """The reason ``GuardSubmission`` recorded for notebooks it could not grade ('' if none)."""
    from nbgrader.api import MissingEntry

    from academy.grading.sanitize import NOT_GRADED

    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return ""
    reasons = []
    for nb in submission.notebooks:
        for comment in nb.comments:
            text = comment.auto_comment or ""
            if text.startswith(NOT_GRADED):
                reasons.append(f"{nb.name}.ipynb not graded: {text[len(NOT_GRADED) :]}")
                break
    return "; ".join(reasons)


def _reason_in(private: Path, assignment: str, student: str) -> str:
    from nbgrader.api import Gradebook

    with Gradebook(_db_url(private)) as gb:
        return _not_graded(gb, assignment, student)


def _copy_flags(private: Path, main: Gradebook, assignment: str, student: str) -> str:
    """For a student nbgrader failed: copy the flags and the reason into the real gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(_db_url(private)) as gb:
        rows = gradebook_rows(gb, assignment, student)
    if rows is None or not rows["reason"]:
        return ""
    save_rows(main, assignment, student, rows, graded=False)
    return str(rows["reason"])


def _students_to_grade(
    saved: set[str],
    students: list[str],
    force: bool,
    results: list[StudentResult],
    report: Callable[[StudentResult], None],
) -> list[str]:
    """The students to grade; those whose grades are ``saved`` already are reported as
    skipped."""
    todo = []
    for student in students:
        if not force and student in saved:
            results.append(StudentResult(student, "skipped"))
            report(results[-1])
        else:
            todo.append(student)
    return todo


def _copy_grades(private: Path, main: Gradebook, assignment: str, student: str) -> StudentResult:
    """Copy one student's autograde results from a private gradebook into the real one (the
    same rows a Dask task returns: ``gradebook_rows``, ``save_rows``)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(_db_url(private)) as gb:
        rows = gradebook_rows(gb, assignment, student)
    if rows is None:
        raise MissingEntry(f"no submission of {student} in {private}")
    return save_rows(main, assignment, student, rows, graded=True)


def grade_in_parallel(
    root: Path,
    assignment: str,
    students: list[str] | None = None,
    workers: int | None = None,
    force: bool = False,
    nbgrader_args: tuple[str, ...] = (),
    on_result: Callable[[StudentResult], None] | None = None,
) -> list[StudentResult]:
    """Autograde ``students`` (default: every submission) with ``workers`` processes."""
    root = root.resolve()
    main_db = root / "gradebook.db"
    if not main_db.is_file():
        raise FileNotFoundError(
            f"{main_db} does not exist: run `nbgrader generate_assignment {assignment}` first"
        )
    students = students if students is not None else submitted_students(root, assignment)
    workers = max(1, workers or os.cpu_count() or 1)
    report = on_result or (lambda result: None)
    grader = ParallelGrader(root, assignment, students, workers, nbgrader_args, report)
    return grader.grade_students(force)


class ParallelGrader:
    """Grade students in batches of nbgrader processes, as the only writer of ``main``.

    Each batch runs stock ``nbgrader autograde`` on a private copy of the gradebook (see the
    module docstring); this object launches the batches, copies each student's grades into
    the real gradebook as soon as a copy holds them, and grades once more, alone, a student
    whose batch stopped before grading them. One object grades once (``grade_students``).
    The real gradebook is opened once the batches are started (``main``, while they run).
    """

    main: Gradebook

    def __init__(
        self,
        root: Path,
        assignment: str,
        students: list[str],
        workers: int,
        nbgrader_args: tuple[str, ...] = (),
        report: Callable[[StudentResult], None] = lambda result: None,
    ) -> None:
        self.root = root
        self.assignment = assignment
        self.students = students  # everyone this run grades, saved or not
        self.main_db = root / "gradebook.db"
        self.workers = workers
        self.nbgrader_args = nbgrader_args
        self.report = report
        self.results: list[StudentResult] = []
        self.batches: list[list[str]] = []
        self.stale: set[str] = set()  # old grades are in the private copies too (force)
        self.done_students: set[str] = set()
        self.marks: dict[int, float] = {}  # batch -> when it was last seen to finish a student
        self.running: dict[Future[list[StudentResult]], int] = {}
        self.processes: dict[int, subprocess.Popen[str]] = {}
        self.tmp = Path()  # the private copies' folder, set while grade_students runs
        self.pool = ThreadPoolExecutor(max_workers=workers)  # no thread before a submit

    def grade_students(self, force: bool) -> list[StudentResult]:
        """Grade every student not saved yet (everyone with ``force``); return all results."""
        saved = saved_students(self.main_db, self.assignment)
        todo = _students_to_grade(saved, self.students, force, self.results, self.report)
        self.batches = _batches(todo, self.workers)
        # With --force, old grades are in the copies too: those students are reported only when
        # their batch ends; everybody else as soon as their new grades are in a private copy.
        self.stale = {s for s in todo if s in saved}
        with tempfile.TemporaryDirectory(prefix="f0-parallel-") as tmp:
            self.tmp = Path(tmp)
            for number, _ in enumerate(self.batches):  # private copies, before any write
                self.copy_gradebook(number)
            self.run_batches()
        return self.results

    def private_db(self, number: int) -> Path:
        """Batch ``number``'s private copy of the gradebook."""
        return self.tmp / f"batch{number}.db"

    def copy_gradebook(self, number: int) -> None:
        """Give batch ``number`` its private copy of the real gradebook."""
        shutil.copy2(self.main_db, self.private_db(number))

    def run_batches(self) -> None:
        """Run every batch; on any interruption stop them, keeping every finished grade."""
        from nbgrader.api import Gradebook

        try:
            for number, _ in enumerate(self.batches):
                self.launch_batch(number)
            with Gradebook(_db_url(self.main_db)) as self.main:  # while the batches start
                while self.running:
                    done, _ = wait(self.running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                    for future in done:
                        number = self.running.pop(future)
                        self.collect_batch(number, future.result())
                    self.stream_grades([n for n in self.running.values() if n in self.processes])
        except BaseException:
            self.stop_batches()
            raise
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def launch_batch(self, number: int) -> None:
        """Start batch ``number``: one nbgrader process, run from a pool thread."""
        future = self.pool.submit(
            _autograde_batch,
            self.root,
            self.assignment,
            self.batches[number],
            self.students,
            number,
            self.private_db(number),
            self.nbgrader_args,
            self.processes,
        )
        self.running[future] = number

    def collect_batch(self, number: int, batch_results: list[StudentResult]) -> None:
        """Save and report the results of a finished batch, retrying whom it did not reach."""
        for result in batch_results:
            if result.student in self.done_students:  # saved while the batch ran
                continue
            if self.stopped_early(number, result):
                self.regrade_alone(result.student)
                continue
            self.save_result(number, result)
            self.record_result(result)

    def stopped_early(self, number: int, result: StudentResult) -> bool:
        """Did nbgrader fail this student without a reason of theirs, in a batch of several?

        Then a batch-mate may have stopped nbgrader before it reached this student.
        """
        return (
            result.status == "failed"
            and len(self.batches[number]) > 1
            and not _reason_in(self.private_db(number), self.assignment, result.student)
        )

    def regrade_alone(self, student: str) -> None:
        """Grade ``student`` once more, in a new batch of their own."""
        self.batches.append([student])
        self.copy_gradebook(len(self.batches) - 1)
        self.launch_batch(len(self.batches) - 1)

    def stream_grades(self, numbers: list[int]) -> None:
        """Save and report the students of running batches whose grades are in already."""
        for number in numbers:
            self.marks.setdefault(number, time.monotonic())
            waiting = [s for s in self.batches[number] if s not in self.done_students | self.stale]
            for student in _saved_in(self.private_db(number), self.assignment, waiting):
                now = time.monotonic()
                result = StudentResult(student, "graded", seconds=now - self.marks[number])
                self.marks[number] = now
                self.save_result(number, result)
                self.record_result(result)

    def save_result(self, number: int, result: StudentResult) -> None:
        """Copy a student's grades, or flags and reason, into the real gradebook (this
        thread only)."""
        private = self.private_db(number)
        if result.status == "graded":
            saved = _copy_grades(private, self.main, self.assignment, result.student)
            result.score, result.max_score = saved.score, saved.max_score
            result.flagged = saved.flagged
            result.status, result.error = saved.status, saved.error
        elif result.status == "failed":
            reason = _copy_flags(private, self.main, self.assignment, result.student)
            if reason:
                result.error, result.flagged = reason, True

    def record_result(self, result: StudentResult) -> None:
        """Count a saved student as done, and report them."""
        self.done_students.add(result.student)
        self.results.append(result)
        self.report(result)

    def stop_batches(self) -> None:
        """Cancel the batches not started, stop the running ones, keep the grades they saved."""
        for future in self.running:
            future.cancel()
        for proc in list(self.processes.values()):
            _stop(proc)
        self.stream_grades(list(self.running.values()))  # keep every grade that was finished


MIN_BATCH = 10  # an nbgrader process starts in about 2 s, the cost of grading one student
POLL_SECONDS = 1.0  # how often running batches are read for students graded meanwhile


def _batches(students: list[str], workers: int) -> list[list[str]]:
    """Up to three batches per worker, of at least MIN_BATCH students where there are enough.

    Every worker gets the same number of batches (load balanced); a batch of ten or more keeps
    nbgrader's start-up under a tenth of the work (amortised); and several batches per worker,
    when there are many students, leave little to redo after an interruption.
    """
    per_worker = max(1, min(3, len(students) // (workers * MIN_BATCH)))
    size = max(1, math.ceil(len(students) / (workers * per_worker)))
    return [students[i : i + size] for i in range(0, len(students), size)]


# nbgrader with academy imported first (academy/__init__.py skips jsonschema's IRI checker,
# which nbgrader's start-up would otherwise build: about 2.8 s per batch), ending with the
# thread that started it (academy.env.die_with_parent).
_NBGRADER = (
    "import sys, academy.env; academy.env.die_with_parent(); "
    "from nbgrader.apps.nbgraderapp import main; sys.exit(main())"
)


def autograde_command(assignment: str, exclude: list[str], db: Path, *options: str) -> list[str]:
    """The ``nbgrader autograde`` of one batch: every submitted student but ``exclude``,
    regraded (``--force``), into gradebook ``db``, quiet but for warnings."""
    return [
        sys.executable,
        "-c",
        _NBGRADER,
        "autograde",
        assignment,
        "--CourseDirectory.student_id=*",
        f"--CourseDirectory.student_id_exclude={','.join(exclude)}",
        "--force",
        f"--CourseDirectory.db_url={_db_url(db)}",
        "--log-level=WARN",
        *options,
    ]


def _autograde_batch(
    root: Path,
    assignment: str,
    batch: list[str],
    everyone: list[str],
    number: int,
    db: Path,
    nbgrader_args: tuple[str, ...],
    processes: dict[int, subprocess.Popen[str]],
) -> list[StudentResult]:
    env = tool_env()
    # Everyone else who submitted, not only the students of this run: with --student, the
    # others must not be graded (or stop nbgrader) inside this batch.
    everyone = sorted({*everyone, *submitted_students(root, assignment)})
    others = [s for s in everyone if s not in batch]
    command = autograde_command(assignment, others, db, *nbgrader_args)
    start, started_at = time.monotonic(), time.time()
    proc = subprocess.Popen(
        command,
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    processes[number] = proc
    try:
        output, _ = proc.communicate()
    finally:
        processes.pop(number, None)
    seconds = (time.monotonic() - start) / len(batch)
    saved = saved_students(db, assignment)
    graded = {  # graded now, not left over from an earlier run
        s
        for s in batch
        if s in saved and _written_since(root / "autograded" / s / assignment, started_at)
    }
    return [
        StudentResult(s, "graded", seconds=seconds)
        if s in graded
        else StudentResult(s, "failed", seconds=seconds, error=output[-2000:])
        for s in batch
    ]


def _written_since(folder: Path, when: float) -> bool:
    try:
        return folder.stat().st_mtime >= when - 1
    except FileNotFoundError:
        return False


def _stop(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- grading on Dask --------------------------------------------------------------------------


def gradebook_rows(gb: Gradebook, assignment: str, student: str) -> dict | None:
    """One student's autograde results in a gradebook, as plain data that travels (None when
    the gradebook has no submission of theirs)."""
    from nbgrader.api import MissingEntry

    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return None
    return {
        "timestamp": submission.timestamp,
        "reason": _not_graded(gb, assignment, student),
        "notebooks": [
            {
                "name": nb.name,
                "flagged": bool(nb.flagged),
                "late_penalty": nb.late_submission_penalty,  # AssignLatePenalties' verdict
                "grades": [(g.name, g.auto_score, g.needs_manual_grade) for g in nb.grades],
                "comments": [(c.name, c.auto_comment) for c in nb.comments],
            }
            for nb in submission.notebooks
        ],
    }


def save_rows(
    main: Gradebook, assignment: str, student: str, rows: dict, graded: bool
) -> StudentResult:
    """Write one student's rows (``gradebook_rows``) into the real gradebook: grades, flags and
    comments when ``graded``, else only the flags and the reason. Saving the same rows twice
    leaves the gradebook as saving them once (every write sets a value, keyed by student)."""
    with _quiet():
        main.update_or_create_student(student)
        target = main.update_or_create_submission(assignment, student, timestamp=rows["timestamp"])
    for nb in rows["notebooks"]:
        target_nb = main.find_submission_notebook(nb["name"], assignment, student)
        if graded:
            target_nb.flagged = nb["flagged"]
            target_nb.late_submission_penalty = nb.get("late_penalty")
            for name, auto_score, needs_manual in nb["grades"]:
                into = main.find_grade(name, nb["name"], assignment, student)
                into.auto_score = auto_score
                into.needs_manual_grade = needs_manual
        else:
            target_nb.flagged = target_nb.flagged or nb["flagged"]
        for name, auto_comment in nb["comments"]:
            into = main.find_comment(name, nb["name"], assignment, student)
            into.auto_comment = auto_comment
    main.db.commit()
    reason = rows["reason"]
    status = "failed" if reason or not graded else "graded"
    flagged = any(nb["flagged"] for nb in rows["notebooks"]) or bool(reason)
    if not graded:
        return StudentResult(student, status, flagged=flagged, error=reason)
    return StudentResult(student, status, target.score, target.max_score, flagged, error=reason)


def _write_graded(root: Path, assignment: str, student: str, files: dict[str, bytes]) -> None:
    """Replace ``autograded/<student>/<assignment>/`` with the files a worker graded."""
    from academy.service.bundle import materialise

    dest = root / "autograded" / student / assignment
    fresh = dest.with_name(f".{assignment}.f0-new")
    shutil.rmtree(fresh, ignore_errors=True)
    materialise(files, fresh)
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif dest.exists() or dest.is_symlink():
        dest.unlink()
    fresh.rename(dest)


DASK_RETRIES = 3  # a task whose worker died is re-run elsewhere; a task that raised, retried


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None):
    """A ``distributed.Client``: on ``scheduler`` (an address such as tcp://host:8786), or on an
    embedded ``LocalCluster`` of ``workers`` single-threaded processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    from academy.service.tasks import local_cluster_options

    n = workers or os.cpu_count() or 1
    with (
        tempfile.TemporaryDirectory(prefix="f0-dask-") as scratch,
        LocalCluster(**local_cluster_options(n, scratch)) as cluster,
        Client(cluster) as client,
    ):
        yield client


def worker_slots(nthreads: dict[str, int]) -> list[str]:
    """One worker address per thread of the cluster, the workers taken in turn (a, b, a, b).

    Batch n of a Dask run goes to slot n first, as a loose restriction (any worker runs it
    if that one is gone). Without it, a cluster that has not run these tasks before puts them
    all beside the course bundle, on one worker, until work stealing moves some a second or so
    later; taken in turn, the first batches go to as many different workers as there are.
    """
    most = max(nthreads.values(), default=0)
    return [a for n in range(most) for a, threads in sorted(nthreads.items()) if threads > n]


def grade_on_dask(
    root: Path,
    assignment: str,
    students: list[str] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    force: bool = False,
    nbgrader_args: tuple[str, ...] = (),
    on_result: Callable[[StudentResult], None] | None = None,
    retries: int = DASK_RETRIES,
    batch_size: int | None = None,
) -> list[StudentResult]:
    """Autograde students as Dask tasks; this process is the only gradebook writer.

    Each task grades a batch of students with one nbgrader start-up (``batch_size``, default:
    as the local pool batches, ``_batches`` over the cluster's threads; 1 gives one task per
    student).

    Workers share no filesystem with the course: each task carries the course bundle
    (``academy.service.bundle``: configuration, course.yaml, the hidden suite, the module's
    source folder and a copy of the gradebook, one Dask task of its own that every grading task
    depends on, so Dask moves it between workers and recomputes it if lost) and the student's
    submitted folder (regular files only), and returns the student's gradebook rows and graded
    folder. A worker that dies mid-task costs nothing: Dask runs its tasks elsewhere (``retries``
    more times for a task that raised), and a result is saved once per student, keyed by
    student (a second result for a saved student is ignored; saving is idempotent anyway).
    """
    from distributed import as_completed

    from academy import manifest
    from academy.service.bundle import course_bundle, digest, folder_files
    from academy.service.tasks import autograde_students, bundle_value

    root = root.resolve()
    main_db = root / "gradebook.db"
    if not main_db.is_file():
        raise FileNotFoundError(
            f"{main_db} does not exist: run `nbgrader generate_assignment {assignment}` first"
        )
    course = manifest.load(root)
    module = course.module(assignment)
    students = students if students is not None else submitted_students(root, assignment)
    report = on_result or (lambda result: None)
    results: list[StudentResult] = []
    saved = saved_students(main_db, assignment)
    todo = _students_to_grade(saved, students, force, results, report)
    if not todo:
        return results
    bundle = course_bundle(course, module, gradebook=True)
    with dask_client(scheduler, workers) as client:
        shared = client.submit(  # recomputed, not lost, when its workers die
            bundle_value, bundle, key=f"f0-bundle-{digest(bundle)}", pure=False
        )
        slots = worker_slots(client.nthreads())
        batches = (
            [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
            if batch_size
            else _batches(todo, max(1, len(slots)))
        )
        futures = {}
        for number, batch in enumerate(batches):
            submissions = {s: folder_files(root / "submitted" / s / assignment, "") for s in batch}
            future = client.submit(
                autograde_students,
                shared,
                assignment,
                submissions,
                tuple(nbgrader_args),
                key=f"f0-autograde-{assignment}-{batch[0]}-{os.urandom(4).hex()}",
                retries=retries,
                pure=False,
                workers=[slots[number % len(slots)]] if slots else None,
                allow_other_workers=True,
            )
            futures[future] = batch
        done: set[str] = set()
        try:
            # nbgrader (1.3 s to import) only once the workers have their tasks: it is needed
            # to save the first result, not to start grading
            from nbgrader.api import Gradebook

            with Gradebook(_db_url(main_db)) as main:
                for future in as_completed(futures):
                    try:
                        outs = future.result()
                    except Exception as exc:  # noqa: BLE001 - this batch only
                        error = f"{type(exc).__name__}: {exc}"
                        outs = [
                            {"student": s, "status": "error", "error": error}
                            for s in futures[future]
                        ]
                    for out in outs:
                        if out["student"] in done:  # saved once per student
                            continue
                        if out["status"] == "error":
                            result = StudentResult(out["student"], "failed", error=out["error"])
                        else:
                            result = _save_task_result(root, main, assignment, out)
                        done.add(out["student"])
                        results.append(result)
                        report(result)
        except BaseException:
            client.cancel(list(futures))
            raise
    return results


def _save_task_result(root: Path, main: Gradebook, assignment: str, out: dict) -> StudentResult:
    student, rows = out["student"], out["rows"]
    graded = out["status"] == "graded" and rows is not None
    if graded:
        _write_graded(root, assignment, student, out["files"])
        result = save_rows(main, assignment, student, rows, graded=True)
    elif rows is not None and rows["reason"]:
        result = save_rows(main, assignment, student, rows, graded=False)
    else:
        result = StudentResult(student, "failed", error=out["error"])
    if result.status == "failed" and not result.error:
        result.error = out["error"]
    result.seconds = out["seconds"]
    return result
