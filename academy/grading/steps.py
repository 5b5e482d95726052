"""Steps added to nbgrader's pipelines, each a small preprocessor with one job.

``jupyter_config.py`` puts them in place:

* ``ClearReflectionAnswers``: generate_assignment drops the worked answers to reflection
  questions, which only the solution notebook keeps.
* ``StartHiddenSuites``: autograde starts the module's hidden suite on the submitted cells
  before the learner's kernel starts, so the two start-ups and runs overlap (the suite grades
  the cells, never the kernel's outputs); ``ScoreHiddenSuites`` collects its report.
* ``ExecuteWithinLimits``: autograde runs the learner's kernel with a memory and CPU cap, and a
  kernel that dies or hangs costs that notebook its outputs, never the grading run.
* ``ScoreHiddenSuites``: autograde runs the module's hidden suite in a fresh trusted process and
  writes each exercise's score and messages into its grade cell, replacing whatever the
  learner's kernel produced there; nbgrader's ``SaveAutoGrades`` then records those scores.
* ``FlagUngradableWork``: just before the grades are saved, flags the submission in the
  gradebook when some work could not be graded (a hang, a crash), so a person looks at it;
  saved grades thus always come with their flag (``f0 autograde`` relies on it).
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbformat.notebooknode import NotebookNode, from_dict
from nbformat.v4 import new_code_cell, new_output
from nbgrader.api import Gradebook
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Enum, Float, Integer, Unicode

from academy import manifest
from academy.bridge.cgroup import LearnerCgroup
from academy.bridge.client import Limits
from academy.bridge.sandbox import MODES, Sandbox, SandboxUnavailable
from academy.grading.kernel import GradingKernelManager
from academy.grading.nofollow import copy_regular_files
from academy.grading.render import exercise_outputs
from academy.grading.suite_runner import SUITE_SECONDS, SuiteReport, run_hidden_suite

__all__ = [
    "ClearReflectionAnswers",
    "configured_limits",
    "ExecuteReference",
    "ExecuteWithinLimits",
    "FlagUngradableWork",
    "ScoreHiddenSuites",
    "StartHiddenSuites",
]

REFLECTION_TAG = "reflection-answer"
OUTPUT_MESSAGES = ("stream", "display_data", "execute_result", "error", "update_display_data")


def sandbox_setting(default: str, what: str) -> Enum:
    """The one sandbox setting every step that runs notebook code has, with its help text."""
    return Enum(
        list(MODES),
        default_value=default,
        help=f"Run {what} in bubblewrap: 'auto' when available (else unsandboxed, with a "
        "warning), 'require' (refuse to run without it) or 'off'.",
    ).tag(config=True)


class ClearReflectionAnswers(NbGraderPreprocessor):
    """Remove cells tagged ``reflection-answer``: worked answers belong to solutions only."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict]:
        nb.cells = [
            c for c in nb.cells if REFLECTION_TAG not in c.get("metadata", {}).get("tags", [])
        ]
        return nb, resources


class ExecuteWithinLimits(Execute):
    """nbgrader's Execute with the learner's kernel bounded, surviving a dead kernel.

    Bounded: memory, CPU time and file size (rlimits), processes and threads (a pids cgroup,
    where the machine allows one, also giving the kernel an equal CPU share), and the output
    a cell may keep (beyond it, output is dropped with a note, so a 200 MB print cannot grow
    the grading process or the graded notebook).
    """

    kernel_memory_mb = Integer(
        4096, help="Address-space limit for the learner's kernel, in MiB (0: no limit)."
    ).tag(config=True)
    sandbox = sandbox_setting("auto", "the learner's kernel")
    kernel_cpu_seconds = Integer(
        900,
        help="CPU-time limit for the learner's kernel, in seconds (0: no limit). It ends "
        "loops that ignore interrupts.",
    ).tag(config=True)
    kernel_file_size_mb = Integer(
        64, help="Largest file the learner's kernel may write, in MiB (0: no limit)."
    ).tag(config=True)
    kernel_max_processes = Integer(
        128,
        help="Processes and threads the sandboxed kernel may have together, enforced with a "
        "pids cgroup when one can be made (0: no limit). It stops fork bombs.",
    ).tag(config=True)
    max_output_bytes = Integer(
        1_000_000,
        help="Output one cell may keep, in bytes; later output of that cell is dropped with "
        "a note (0: no limit).",
    ).tag(config=True)
    student_seconds = Float(
        300.0,
        help="Wall-clock budget for one student's notebook, in seconds: the kernel run and "
        "the hidden suite together (0: no budget). The kernel may use kernel_share of it; "
        "the hidden suite gets what is left, at most ScoreHiddenSuites.suite_timeout.",
    ).tag(config=True)
    kernel_debugger = Bool(
        False,
        help="Start the learner's kernel with ipykernel's debugger support, which imports "
        "debugpy: about 0.1 s of CPU per student. Nobody attaches a debugger to a grading "
        "kernel, so it starts without one (academy.bridge.grading_kernel).",
    ).tag(config=True)
    trim_kernel_waits = Bool(
        True,
        help="Start and stop the learner's kernel with academy.grading.kernel's manager, "
        "which finds the kernel ready without waiting out 0.2 s of silence and polls a "
        "killed kernel every 0.01 s; False: jupyter_client's own (about 0.3 s more per "
        "student, all of it idle).",
    ).tag(config=True)
    kernel_share = Float(
        0.5,
        help="Share of student_seconds the learner's kernel may use; cells not started by "
        "then are not run (scores come from the hidden suite, which runs anyway).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # nbgrader reuses one instance for a whole run: per-notebook arguments are built from
        # the configured ones on every call, never appended to them.
        self._configured_arguments = list(self.extra_arguments)
        self._configured_timeout: int | None = self.timeout  # nbclient: Integer, allow_none

    def kernel_arguments(self) -> list[str]:
        """The configured kernel arguments plus this step's rlimit and output-cap start-up line."""
        mb = 1024 * 1024
        limits = []
        for name, value in (
            ("RLIMIT_AS", self.kernel_memory_mb * mb),
            ("RLIMIT_CPU", self.kernel_cpu_seconds),
            ("RLIMIT_FSIZE", self.kernel_file_size_mb * mb),
        ):
            if value:
                limits.append(f"_r.setrlimit(_r.{name}, ({value}, {value}))")
        if self.max_output_bytes:
            # A cooperative cap inside the kernel, so a huge print never becomes a huge message.
            # IPython swaps sys.stdout.write for each cell, hence a pre_run_cell hook.
            n = self.max_output_bytes
            limits.append(  # no single quotes: the line travels shell-quoted
                'import sys as _s; get_ipython().events.register("pre_run_cell", '
                'lambda *_a, _s=_s: [setattr(_f, "write", (lambda w: lambda s, *a, **k: '
                f'w(s[:{n}] + " [output cut at {n:,} characters] " if isinstance(s, str) '
                f"and len(s) > {n} else s, *a, **k))(_f.write)) for _f in (_s.stdout, _s.stderr)]"
                "); del _s"
            )
        if not limits:
            return list(self._configured_arguments)
        line = "import resource as _r; " + "; ".join(limits) + "; del _r"
        return [*self._configured_arguments, f"--IPKernelApp.exec_lines={shlex.quote(line)}"]

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict]:
        self._private_dirs: list[str] = []
        self._cgroups: list[LearnerCgroup] = []
        self._output_bytes: dict[int, int] = {}
        academy = resources.setdefault("academy", {})
        start = time.monotonic()
        if self.student_seconds:  # StartHiddenSuites may have started the budget already
            academy.setdefault("deadline", start + self.student_seconds)
        self._kernel_deadline = (
            start + self.student_seconds * self.kernel_share if self.student_seconds else None
        )
        # The kernel works in a scratch copy of the graded folder, never in the folder itself:
        # nothing it creates (links, FIFOs, huge files, a notebook swapped for a link) is ever
        # seen by nbgrader's later steps, which write, chmod and copy that folder.
        metadata = resources.setdefault("metadata", {})
        graded_folder = metadata.get("path") or ""
        scratch = tempfile.mkdtemp(prefix="f0-scratch-")
        self._private_dirs.append(scratch)
        skipped = copy_regular_files(graded_folder, scratch, self.kernel_file_size_mb * 2**20)
        if skipped:
            self.log.warning("not given to the kernel (not regular files): %s", ", ".join(skipped))
        metadata["path"] = scratch
        try:
            return super().preprocess(nb, resources)
        except SandboxUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - one learner's kernel must not stop grading
            self.log.warning(
                "kernel for %s stopped early: %s: %s",
                resources.get("nbgrader", {}).get("student"),
                type(exc).__name__,
                exc,
            )
            academy["kernel_problem"] = f"{type(exc).__name__}: {exc}"
            return nb, resources
        finally:
            academy["kernel_done_at"] = time.monotonic()
            metadata["path"] = graded_folder
            self.timeout = self._configured_timeout
            for group in self._cgroups:
                group.remove()  # kills a daemon the notebook left behind
            for folder in self._private_dirs:
                shutil.rmtree(folder, ignore_errors=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], index: int
    ) -> tuple[NotebookNode, dict]:
        """Run one cell within what is left of the kernel's share of the student's budget."""
        if self._kernel_deadline is not None and cell.cell_type == "code":
            left = self._kernel_deadline - time.monotonic()
            if left <= 0:
                problem = resources.setdefault("academy", {}).setdefault(
                    "kernel_problem",
                    f"the notebook's cells ran past their share of the {self.student_seconds:g} s "
                    "budget; later cells were not run",
                )
                self.log.warning("%s: %s", resources.get("nbgrader", {}).get("student"), problem)
                return cell, resources
            configured = self._configured_timeout
            self.timeout = max(1, int(min(configured, left) if configured else left))
        return super().preprocess_cell(cell, resources, index)

    def output(
        self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        """Keep a cell's output up to ``max_output_bytes``; say once that the rest was dropped."""
        limit = self.max_output_bytes
        if not limit or msg["msg_type"] not in OUTPUT_MESSAGES:
            return super().output(outs, msg, display_id, cell_index)
        used = self._output_bytes.get(cell_index, 0)
        if used > limit:
            return None
        size = len(json.dumps(msg["content"]))
        if used + size <= limit:
            self._output_bytes[cell_index] = used + size
            return super().output(outs, msg, display_id, cell_index)
        self._output_bytes[cell_index] = limit + 1
        if msg["msg_type"] == "stream":  # keep what fits of the text
            head = dict(
                msg, content=dict(msg["content"], text=msg["content"]["text"][: limit - used])
            )
            super().output(outs, head, display_id, cell_index)
        note = new_output(
            "stream",
            name="stdout",
            text=f"\n[output cut: this cell printed more than {limit:,} bytes; "
            "the rest was dropped]\n",
        )
        outs.append(note)
        return note

    def create_kernel_manager(self) -> Any:
        """A kernel manager that starts the kernel in the sandbox, over ipc sockets."""
        # nbgrader's Execute fixes the class in __init__, above any configuration; choose here
        self.kernel_manager_class = (
            GradingKernelManager if self.trim_kernel_waits else AsyncKernelManager
        )
        km = super().create_kernel_manager()
        # Set here, after nbclient re-reads its configuration at the start of preprocess().
        self.extra_arguments = self.kernel_arguments()
        sandbox = Sandbox(self.sandbox)
        sandbox.check()
        if not sandbox.active:
            return km
        folder = tempfile.mkdtemp(prefix="f0-kernel-")
        self._private_dirs.append(folder)
        km.transport = "ipc"
        km.connection_file = os.path.join(folder, "kernel.json")
        km.ip = os.path.join(folder, "kernel-ipc")
        # Messages larger than a cell may keep are refused by the socket itself.
        if self.max_output_bytes:
            km.context.setsockopt(zmq.MAXMSGSIZE, max(self.max_output_bytes * 8, 16 * 2**20))
        group = LearnerCgroup(self.kernel_max_processes)
        if group.create():
            self._cgroups.append(group)
        else:
            self.log.warning("the learner's kernel runs without a process limit (no pids cgroup)")
        cgroup_args = [arg for f in group.folders for arg in ("--cgroup", str(f))]
        # nbclient asks the manager for its spec; this one never comes from a kernels folder.
        km._kernel_spec = KernelSpec(
            argv=[
                sys.executable,
                "-m",
                "academy.bridge.kernel_sandbox",
                *cgroup_args,
                *([] if self.kernel_debugger else ["--without-debugger"]),
                "-f",
                "{connection_file}",
            ],
            display_name="Python 3 (sandboxed grading)",
            language="python",
            interrupt_mode="message",
            metadata={},
        )
        return km


class ExecuteReference(ExecuteWithinLimits):
    """Execute the instructor's solution notebooks as ``pytest --nbval`` will re-run them.

    Reference code is trusted, and its stored outputs must match an ordinary kernel's, so
    generate_solution runs it unsandboxed.
    """

    sandbox = sandbox_setting("off", "the solution notebooks")
    student_seconds = Float(
        0.0, help="Wall-clock budget for a whole solution notebook, in seconds (0: none)."
    ).tag(config=True)


class ScoreHiddenSuites(NbGraderPreprocessor):
    """Score each exercise with the module's hidden suite and write it into its grade cell."""

    course_root = Unicode(
        "", help="Folder holding course.yaml; empty means the current directory or above it."
    ).tag(config=True)
    # Defaults come from ``Limits``, the one place they are defined; ``f0 check`` and the
    # grading service read these settings from the course's configuration too.
    call_timeout = Float(
        Limits.call_seconds, help="Seconds one call into the learner's code may take."
    ).tag(config=True)
    load_timeout = Float(
        Limits.load_seconds, help="Seconds the learner's cells may take to load."
    ).tag(config=True)
    memory_mb = Integer(
        Limits.memory_mb, help="Memory cap for the learner's code while graded, MiB."
    ).tag(config=True)
    cpu_seconds = Integer(
        Limits.cpu_seconds, help="CPU-time cap for the learner's code while graded."
    ).tag(config=True)
    sandbox = sandbox_setting("auto", "the learner's code while the hidden suite grades it")
    suite_timeout = Float(
        SUITE_SECONDS, help="Wall-clock cap for one notebook's whole hidden suite."
    ).tag(config=True)
    max_processes = Integer(
        Limits.max_processes,
        help="Processes and threads the learner's code may have together while graded, "
        "enforced with a pids cgroup when one can be made (0: no limit).",
    ).tag(config=True)
    preload = Bool(
        True,
        help="Fork each student's hidden-suite process from a fork server that has pytest and "
        "the grading plugin imported (academy.grading.forkserver), instead of starting a new "
        "interpreter: about 0.3 s less CPU per student. The server never runs a suite or "
        "learner code, so each student still gets a fresh process (False: a new interpreter).",
    ).tag(config=True)

    def limits(self) -> Limits:
        return Limits(
            call_seconds=self.call_timeout,
            load_seconds=self.load_timeout,
            cpu_seconds=self.cpu_seconds,
            memory_mb=self.memory_mb,
            max_processes=self.max_processes,
            sandbox=self.sandbox,
        )

    def suite_run(
        self, nb: NotebookNode, resources: dict[str, Any]
    ) -> tuple[manifest.Module, Any] | None:
        """(module, a function running its hidden suite on ``nb``'s cells and returning the
        report), or None when the assignment is not a course.yaml module."""
        course = manifest.load(Path(self.course_root) if self.course_root else None)
        assignment = resources["nbgrader"]["assignment"]
        try:
            module = course.module(assignment)
        except manifest.ManifestError:
            self.log.info("%s is not a course.yaml module; no hidden suite to run", assignment)
            return None
        timeout = self.suite_timeout
        deadline = resources.get("academy", {}).get("deadline")
        if deadline is not None:  # the student's budget (StartHiddenSuites/ExecuteWithinLimits)
            timeout = max(1.0, min(timeout, deadline - time.monotonic()))
        limits, preload = self.limits(), self.preload
        return module, lambda: run_hidden_suite(
            course, module, nb, limits, timeout, preload=preload
        )

    @staticmethod
    def grade_outputs(report: SuiteReport, exercise_id: str, cap: float) -> list[NotebookNode]:
        """A grade cell's outputs: the exercise's score (at most ``cap``) and messages."""
        result = report.exercises[exercise_id]
        return [from_dict(o) for o in exercise_outputs(result, report.load_problems, cap)]

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict]:
        started: Future[SuiteReport] | None = resources.get("academy", {}).pop("suite_run", None)
        run = self.suite_run(nb, resources)
        if run is None:
            return nb, resources
        module, grade = run
        report = started.result() if started is not None else grade()
        if not report.sandboxed:
            self.log.warning(
                "learner code for %s was graded WITHOUT a sandbox (bubblewrap missing or disabled)",
                resources["nbgrader"]["student"],
            )
        cells = module.by_grade_cell()
        present = set()
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if cell.cell_type != "code" or grade_id not in cells:
                continue
            present.add(grade_id)
            cap = float(cell.metadata["nbgrader"].get("points", 0))
            result = report.exercises[cells[grade_id].id]
            if result.score > cap:
                self.log.error(
                    "grade cell %s is worth %s points but course.yaml says %s; run `make generate`",
                    grade_id,
                    cap,
                    result.exercise.points,
                )
            cell.outputs = self.grade_outputs(report, cells[grade_id].id, cap)
        for grade_id, exercise in cells.items():
            if grade_id not in present:  # deleted by the learner: the work is graded anyway
                self.log.warning("grade cell %s was missing; restored at the end", grade_id)
                cell = restored_grade_cell(grade_id, exercise.id, exercise.points)
                cell.outputs = self.grade_outputs(report, exercise.id, exercise.points)
                nb.cells.append(cell)
        academy = resources.setdefault("academy", {})
        academy["report"] = report.to_json()
        academy["flagged"] = report.flagged or "kernel_problem" in academy
        self.log.info(
            "%s: hidden suites scored %g / %g%s",
            resources["nbgrader"]["student"],
            report.score,
            report.max_points,
            " (flagged)" if academy["flagged"] else "",
        )
        return nb, resources


_SUITES = ThreadPoolExecutor(max_workers=2, thread_name_prefix="f0-hidden-suite")


class StartHiddenSuites(NbGraderPreprocessor):
    """Start the hidden suite on the submitted cells, so it runs while the kernel does.

    The suite grades the notebook's code cells in a sandboxed worker of its own and never
    reads what the learner's kernel printed, so nothing ties it to ``ExecuteWithinLimits``:
    started first (on a copy of the notebook, in a background thread), the suite worker's
    start-up and run overlap the kernel's. ``ScoreHiddenSuites`` waits for the report and
    writes the grade cells as before; without this step it runs the suite itself. Both share
    the student's budget (``ExecuteWithinLimits.student_seconds``), started here.
    """

    enabled = Bool(
        True,
        help="Run the hidden suite alongside the learner's kernel (False: after it, in "
        "ScoreHiddenSuites). Same scores either way; alongside is faster.",
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict]:
        if not self.enabled:
            return nb, resources
        budget = ExecuteWithinLimits(parent=self).student_seconds
        academy = resources.setdefault("academy", {})
        if budget:
            academy.setdefault("deadline", time.monotonic() + budget)
        run = ScoreHiddenSuites(parent=self).suite_run(copy.deepcopy(nb), resources)
        if run is not None:
            grade = run[1]

            def started() -> SuiteReport:
                academy["suite_started_at"] = time.monotonic()
                return grade()

            academy["suite_run"] = _SUITES.submit(started)
        return nb, resources


def configured_limits(root: Path) -> tuple[Limits, float]:
    """The hidden-suite limits and suite timeout the course's nbgrader configuration sets.

    Every grading path (``nbgrader autograde``, ``f0 check``, the grading service) grades with
    these, so a learner's check scores exactly as the instructor's grading does. Without an
    ``nbgrader_config.py`` in ``root``, the defaults.
    """
    from traitlets.config.loader import PyFileConfigLoader

    if not (root / "nbgrader_config.py").is_file():
        return Limits(), SUITE_SECONDS
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    step = ScoreHiddenSuites(config=config)
    return step.limits(), step.suite_timeout


def restored_grade_cell(grade_id: str, exercise_id: str, points: float) -> NotebookNode:
    """A grade cell put back where a learner deleted one, so nbgrader records its score."""
    return new_code_cell(
        source=f"# Exercise {exercise_id}: hidden tests (this cell was missing and was restored)",
        metadata={
            "nbgrader": {
                "grade": True,
                "grade_id": grade_id,
                "locked": True,
                "points": points,
                "schema_version": 3,
                "solution": False,
                "task": False,
            }
        },
    )


class FlagUngradableWork(NbGraderPreprocessor):
    """Flag the submitted notebook in the gradebook when part of it could not be graded."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict]:
        if not resources.get("academy", {}).get("flagged"):
            return nb, resources
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_submission_notebook(
                info["notebook"], info["assignment"], info["student"]
            )
            notebook.flagged = True
            gb.db.commit()
        return nb, resources
