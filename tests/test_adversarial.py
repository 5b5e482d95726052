"""The adversarial corpus: hostile or broken submissions, graded together in one parallel run.

Every entry is a module 1 submission with one attack in it, graded with ``f0 autograde`` on
two workers with both sandboxes required, next to an honest bystander. Each attack may cost
its own author the points it touches (0 and flagged where the work could not be graded); it
must never stop the run, change another learner's grade, leave a process behind, touch the
course's files, or earn points for wrong code.
"""

from __future__ import annotations

import hashlib
import json
import sys

import nbformat
import psutil
import pytest
from course_tools import course, run, submission

from academy.build import copy_course

pytestmark = pytest.mark.xdist_group("adversarial")

COURSE = course()
MODULE = COURSE.module("module1")
FULL = MODULE.points  # 16: 1.1=2, 1.2=2, 1.3=3, 1.4=3, 1.5=6
F0 = [sys.executable, "-m", "academy.cli"]
MARKER = "f0-adversarial-daemon"
SECRET = "bystander-secret-7d1c"  # written into the bystander's notebook; nobody may read it
UNSOLVED_1_5 = ("ex_1_5_solution",)  # worth 6: wrong code there scores 10 of 16

REACH_OUT = f"""
import glob, os
found = []
own = os.getcwd()
for pattern in ("../../../**/*.ipynb", "../../../**/*.py", "@ROOT@/**/*.ipynb", "@ROOT@/**/*.py"):
    for path in glob.glob(pattern, recursive=True):
        if os.path.realpath(path).startswith(own):
            continue  # its own submission (this very cell) does not count
        try:
            text = open(path, errors="ignore").read()
        except OSError:
            continue
        if "BEGIN SOLUTION" in text or "{SECRET}" in text or "@case(" in text:
            found.append(path)
print("LEAKED" if found else "nothing to read")
"""

ATTACKS = {
    # kind: (notebook builder, expected score, expected flagged: None when either is right)
    "infinite_loop": (
        lambda: submission(
            COURSE,
            MODULE,
            replace={"ex_1_2_solution": "def describe_app(ctx):\n    while True:\n        pass\n"},
        ),
        FULL - 2,
        True,
    ),
    "loop_ignoring_interrupts": (
        lambda: submission(
            COURSE,
            MODULE,
            replace={
                "ex_1_2_solution": "import signal\n\ndef describe_app(ctx):\n"
                "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "    while True:\n        pass\n"
            },
        ),
        FULL - 2,
        True,
    ),
    "memory_bomb": (
        lambda: extra_cell("hoard = []\nwhile True:\n    hoard.append(bytearray(64 * 2**20))\n"),
        FULL,
        False,
    ),
    # The forks may take the kernel down with them (a race): the work is still graded, by
    # the hidden suite in its own capped worker; flagged or not (None) depends on the race.
    "fork_bomb": (lambda: extra_cell("import os\nwhile True:\n    os.fork()\n"), FULL, None),
    "os_exit": (
        lambda: submission(
            COURSE,
            MODULE,
            replace={
                "ex_1_4_solution": "import os\n\ndef get_setting(ctx, key, defaults):\n"
                "    os._exit(1)\n\ndef safe_set(ctx, key, value, who):\n    os._exit(1)\n"
            },
        ),
        FULL - 3,
        True,
    ),
    "segfault": (
        lambda: submission(
            COURSE,
            MODULE,
            replace={
                "ex_1_4_solution": "import ctypes\n\ndef get_setting(ctx, key, defaults):\n"
                "    return ctypes.string_at(0)\n\ndef safe_set(ctx, key, value, who):\n"
                "    return ctypes.string_at(0)\n"
            },
        ),
        FULL - 3,
        True,
    ),
    "disk_filler": (
        lambda: extra_cell(
            "chunk = b'x' * 2**20\nwith open('fill.bin', 'wb') as fh:\n"
            "    while True:\n        fh.write(chunk)\n"
        ),
        FULL,
        False,
    ),
    "huge_print": (lambda: extra_cell("print('x' * 200_000_000)\n"), FULL, False),
    "daemon_left_behind": (
        lambda: extra_cell(
            "import subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)  "
            f"# {MARKER}'], start_new_session=True)\n"
        ),
        FULL,
        False,
    ),
    "reads_source_and_other_students": (lambda: extra_cell(REACH_OUT), FULL, False),
    "attacks_gradebook": (
        lambda: extra_cell(
            "import glob, os, sqlite3\n"
            "for path in ('../../../gradebook.db', '@ROOT@/gradebook.db'):\n"
            "    try:\n"
            "        db = sqlite3.connect(path)\n"
            "        db.execute('UPDATE grade SET manual_score = 100')\n"
            "        db.commit()\n"
            "        os.remove(path)\n"
            "    except Exception as exc:\n"
            "        print(type(exc).__name__)\n"
        ),
        FULL,
        False,
    ),
    "edits_grading_config": (
        lambda: extra_cell(
            "for name in ('nbgrader_config.py', 'jupyter_config.py'):\n"
            "    try:\n"
            "        with open('@ROOT@/' + name, 'a') as fh:\n"
            "            fh.write('\\nc.ScoreHiddenSuites.enabled = False\\n')\n"
            "    except OSError as exc:\n"
            "        print(type(exc).__name__)\n"
        ),
        FULL,
        False,
    ),
    "input_and_ast_transformers": (
        lambda: extra_cell(
            "import ast\nip = get_ipython()\n"
            "if ip is not None:\n"
            "    ip.input_transformers_post.append(lambda lines: ['pass\\n'])\n"
            "    class NoAsserts(ast.NodeTransformer):\n"
            "        def visit_Assert(self, node):\n"
            "            return ast.Pass()\n"
            "    ip.ast_transformers.append(NoAsserts())\n",
            after="ex_1_1_solution",
            unsolved=UNSOLVED_1_5,
        ),
        FULL - 6,
        False,
    ),
    "patches_pytest": (
        lambda: extra_cell(
            "import sys, types\n"
            "for name in ('conftest.py', 'pytest.py', '../conftest.py'):\n"
            "    try:\n"
            "        with open(name, 'w') as fh:\n"
            "            fh.write('import os\\nos._exit(0)\\n')\n"
            "    except OSError:\n"
            "        pass\n"
            "fake = types.ModuleType('pytest')\n"
            "fake.main = lambda *a, **k: 0\n"
            "sys.modules['pytest'] = fake\n",
            unsolved=UNSOLVED_1_5,
        ),
        FULL - 6,
        False,
    ),
    "always_equal_objects": (
        lambda: submission(
            COURSE,
            MODULE,
            replace={
                "ex_1_1_solution": "class Anything:\n"
                "    def __eq__(self, other):\n        return True\n"
                "    def __ne__(self, other):\n        return False\n"
                "    __hash__ = object.__hash__\n"
                "    def get(self, key, default=None):\n        return Anything()\n"
                "    def keys(self):\n        return Anything()\n\n"
                "def create_app_context():\n    return Anything()\n"
            },
        ),
        FULL - 2,
        False,
    ),
    "fake_score_printed": (
        lambda: extra_cell(
            "from IPython.display import display\nprint('Score: 16 / 16')\ndisplay(16)\n16\n",
            unsolved=UNSOLVED_1_5,
        ),
        FULL - 6,
        False,
    ),
    "sys_exit": (lambda: extra_cell("import sys\nsys.exit(0)\n"), FULL, False),
    "bystander": (
        lambda: extra_cell(f"note = '{SECRET}'\n"),
        FULL,
        False,
    ),
}


def extra_cell(source: str, after: str = "ex_1_5_solution", unsolved: tuple[str, ...] = ()):
    """A submission with the reference solutions and one more cell of the learner's own."""
    nb = submission(COURSE, MODULE, unsolved=unsolved)
    index = next(
        i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after
    )
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def daemons():
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(MARKER in part for part in proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = copy_course(COURSE, tmp_path_factory.mktemp("course"))
    assert run(["nbgrader", "generate_assignment", MODULE.id, "--force"], root).returncode == 0
    for student, (build, _, _) in ATTACKS.items():
        folder = root / "submitted" / student / MODULE.id
        folder.mkdir(parents=True)
        nb = build()
        for cell in nb.cells:  # attacks aim at the real course folder
            cell.source = cell.source.replace("@ROOT@", str(root))
        nbformat.write(nb, folder / MODULE.notebook)
    guarded = ["nbgrader_config.py", "jupyter_config.py", "course.yaml", MODULE.suite]
    before = {name: digest(root / name) for name in guarded}
    proc = run(
        [
            *F0,
            "autograde",
            MODULE.id,
            "--workers",
            "2",
            "--",
            "--ExecuteWithinLimits.timeout=20",
            "--ExecuteWithinLimits.kernel_memory_mb=1536",
            "--ExecuteWithinLimits.sandbox=require",
            "--ScoreHiddenSuites.call_timeout=3",
            "--ScoreHiddenSuites.load_timeout=10",
            "--ScoreHiddenSuites.memory_mb=768",
            "--ScoreHiddenSuites.sandbox=require",
        ],
        root,
        timeout=1200,
    )
    after = {name: digest(root / name) for name in guarded}
    return root, proc, before, after


def gradebook(root):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        rows = {}
        for student in ATTACKS:
            sub = gb.find_submission(MODULE.id, student)
            nb = sub.notebooks[0]
            rows[student] = (sub.score, nb.flagged, {g.name: g.auto_score for g in nb.grades})
        return rows


def test_the_grading_run_survives_the_whole_corpus(graded):
    root, proc, before, after = graded
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert before == after, "a submission changed the course's grading files"
    assert daemons() == [], "a learner's process outlived the grading run"


@pytest.mark.parametrize("student", list(ATTACKS))
def test_each_attack_costs_only_what_it_touches(graded, student):
    root, _, _, _ = graded
    score, flagged, grades = gradebook(root)[student]
    _, expected, expected_flag = ATTACKS[student]
    assert score == expected, f"{student}: {grades}"
    if expected_flag is not None:
        assert flagged == expected_flag, f"{student}: flagged={flagged}"


def test_nothing_hostile_reaches_the_graded_notebooks(graded):
    root, _, _, _ = graded
    graded_dir = root / "autograded"
    for path in graded_dir.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 70 * 2**20, f"{path} is too big"
    for student in ATTACKS:
        nb_path = graded_dir / student / MODULE.id / MODULE.notebook
        outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(nb_path, 4).cells])
        assert nb_path.stat().st_size < 3 * 2**20, f"{student}'s graded notebook is huge"
        assert "LEAKED" not in outputs, f"{student} read the source, the suite or another student"
    reader = graded_dir / "reads_source_and_other_students" / MODULE.id / MODULE.notebook
    assert "nothing to read" in reader.read_text()  # the attack ran, and found nothing
    out = (graded_dir / "huge_print" / MODULE.id / MODULE.notebook).read_text()
    assert "[output cut" in out


def test_a_cells_output_is_cut_at_the_byte_limit_keeping_its_head(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook

    from academy.grading.steps import ExecuteWithinLimits

    nb = new_notebook(
        cells=[
            new_code_cell("print('x' * 5_000_000)"),  # one huge message
            new_code_cell("for i in range(3000):\n    print('y' * 1000)"),  # many small ones
            new_code_cell("print('after')"),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    step = ExecuteWithinLimits(timeout=60, sandbox="require", max_output_bytes=100_000)
    nb, resources = step.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert "kernel_problem" not in resources.get("academy", {})
    for cell, char in zip(nb.cells[:2], "xy", strict=True):
        kept, note = cell.outputs
        assert set(kept.text) <= {char, "\n"} and 90_000 < len(kept.text) <= 100_000
        assert "[output cut: this cell printed more than 100,000 bytes" in note.text
    assert nb.cells[2].outputs[0].text == "after\n"  # the next cell has its own budget
