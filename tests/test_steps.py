"""ExecuteWithinLimits, the learner's kernel step: per-call state, scratch folder, time budget."""

from __future__ import annotations

import os
import time

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from academy.grading.steps import ExecuteWithinLimits

pytestmark = pytest.mark.xdist_group("kernel_steps")


def notebook(*sources: str):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


class Recording(ExecuteWithinLimits):
    """Records the kernel arguments each kernel was really started with."""

    started: list[list[str]]

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        self.started.append(list(self.extra_arguments))
        return km


def test_one_instance_starts_every_kernel_with_the_same_arguments(tmp_path):
    step = Recording(timeout=30, extra_arguments=["--HistoryManager.enabled=False"])
    step.started = []
    for _ in range(3):  # nbgrader reuses one instance for a whole run
        step.preprocess(notebook("1 + 1"), {"metadata": {"path": str(tmp_path)}})
    assert len(step.started) == 3
    assert step.started[0] == step.started[1] == step.started[2]
    assert step.started[0][0] == "--HistoryManager.enabled=False"
    assert sum("exec_lines" in a for a in step.started[0]) == 1


@pytest.mark.parametrize("debugger", [False, True])
def test_the_grading_kernel_starts_without_a_debugger_unless_asked(tmp_path, debugger):
    probe = (
        "import sys\n"
        "print(sys.modules.get('debugpy') is not None, "
        "get_ipython().kernel.__dict__.get('debugger') is not None)"
    )
    step = ExecuteWithinLimits(timeout=30, kernel_debugger=debugger)
    nb, resources = step.preprocess(notebook(probe), {"metadata": {"path": str(tmp_path)}})
    assert "kernel_problem" not in resources.get("academy", {})
    # debugpy loaded, a debugger made: both only when asked for (the default is neither)
    assert nb.cells[0].outputs[0].text.split() == [str(debugger), str(debugger)]


def test_the_kernel_works_in_a_scratch_copy_never_in_the_graded_folder(tmp_path):
    graded = tmp_path / "autograded" / "s" / "m"
    graded.mkdir(parents=True)
    (graded / "data.csv").write_text("a,b\n1,2\n")
    os.symlink("/etc/hostname", graded / "planted-link")
    os.mkfifo(graded / "planted-fifo")
    before = sorted(p.name for p in graded.iterdir())
    nb, resources = ExecuteWithinLimits(timeout=30).preprocess(
        notebook(
            "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))",
            "open('data.csv').read()",
            "os.symlink('/etc/passwd', 'new-link')\nopen('written.txt', 'w').write('x')",
        ),
        {"metadata": {"path": str(graded)}},
    )
    assert "kernel_problem" not in resources.get("academy", {})
    cwd, listing = nb.cells[0].outputs[0].text.splitlines()
    assert os.path.realpath(cwd) != os.path.realpath(graded)
    assert listing == "['data.csv']"  # regular files come along; links and FIFOs do not
    assert "a,b" in nb.cells[1].outputs[0].data["text/plain"]
    assert sorted(p.name for p in graded.iterdir()) == before  # nothing came back
    assert resources["metadata"]["path"] == str(graded)
    assert not os.path.exists(cwd), "the scratch folder was not removed"


def test_the_kernel_gets_its_share_of_the_students_budget_and_no_more(tmp_path):
    step = ExecuteWithinLimits(timeout=60, student_seconds=8, kernel_share=0.5)
    started = time.monotonic()
    nb, resources = step.preprocess(
        notebook("import time", *["time.sleep(1.5)"] * 6, "print('late')"),
        {"metadata": {"path": str(tmp_path)}},
    )
    problem = resources["academy"]["kernel_problem"]
    assert "budget" in problem
    assert nb.cells[-1].outputs == []  # the last cell never ran
    ran = sum(1 for c in nb.cells if c.get("execution_count"))
    assert 2 <= ran <= 5, ran  # a 4 s share cannot hold the six 1.5 s sleeps
    assert resources["academy"]["deadline"] > started
    assert step.timeout == 60  # the configured per-cell timeout is restored


def _graded_in_process(nb, alongside: bool):
    """Run the three suite and kernel steps as nbgrader's autograde does, in this process."""
    from course_tools import ROOT
    from traitlets.config import Config

    from academy.grading.steps import ScoreHiddenSuites, StartHiddenSuites

    config = Config(
        {
            "ScoreHiddenSuites": {"course_root": str(ROOT)},
            "StartHiddenSuites": {"enabled": alongside},
            "ExecuteWithinLimits": {"timeout": 60},
        }
    )
    resources = {
        "nbgrader": {"assignment": "module1", "student": "s"},
        "metadata": {"path": str(ROOT / "exercises" / "module1")},
    }
    for step in (StartHiddenSuites, ExecuteWithinLimits, ScoreHiddenSuites):
        nb, resources = step(config=config).preprocess(nb, resources)
    return nb, resources["academy"]


def test_the_hidden_suite_runs_alongside_the_kernel_with_the_same_scores():
    """StartHiddenSuites starts the suite before the kernel ends (ordering, not speed), and
    the grade cells come out as when ScoreHiddenSuites runs the suite after the kernel."""
    import nbformat
    from course_tools import course, submission

    module = course().module("module1")
    nb = submission(course(), module, unsolved=("ex_1_5_solution",))
    together, first = _graded_in_process(nbformat.from_dict(nb), alongside=True)
    after, second = _graded_in_process(nbformat.from_dict(nb), alongside=False)
    assert first["suite_started_at"] < first["kernel_done_at"]
    assert "suite_started_at" not in second
    assert first["report"]["score"] == second["report"]["score"] == 10.0
    outputs = [
        [c.get("outputs") for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        for nb in (together, after)
    ]
    assert outputs[0] == outputs[1] and any(outputs[0])
