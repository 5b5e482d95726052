"""Parallel `f0 autograde` against sequential stock `nbgrader autograde`, in the same run.

Builds a temporary copy of the course with N module-1 submissions (a mix of complete and
partial work) and grades them three times, into separate gradebooks:

* the baseline: sequential ``nbgrader autograde`` with the course's pipeline and none of its
  speed work (``benchmarks/stock.py``: the suite after the kernel, in a new interpreter;
  nbgrader's own metadata check; the kernel with its debugger);
* sequential ``nbgrader autograde`` with the course's pipeline as configured;
* parallel ``f0 autograde --workers W`` (the course's pipeline, batches on W processes).

It checks all three give the same grades, and prints the speed-ups over the baseline and the
CPU each run cost per submission, counted over the whole machine (run it on a quiet machine).
Before and after the runs it measures how many cores of work the machine delivers to W
CPU-bound processes (``stock.machine_capacity``): virtual cores that share a physical one, or
a busy host, deliver fewer than W, and no parallel run can beat that.

    python benchmarks/bench_grading.py [--submissions 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from course_tools import course, submission  # noqa: E402
from stock import STOCK_PIPELINE, busy_seconds, machine_capacity  # noqa: E402

from academy.build import copy_course, tool_env  # noqa: E402


def sh(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall-clock seconds, and the machine's busy CPU seconds, while ``command`` ran."""
    busy = busy_seconds()
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=tool_env(), check=True, capture_output=True)
    return time.perf_counter() - start, busy_seconds() - busy


def scores(root: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.find_assignment("module1").submissions}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=30)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    c = course()
    module = c.module("module1")
    variants = [(), ("ex_1_5_solution",), ("ex_1_3_solution", "ex_1_4_solution")]
    runs = {
        "baseline": ["nbgrader", "autograde", "module1", *STOCK_PIPELINE],
        "sequential": ["nbgrader", "autograde", "module1"],
        "parallel": [
            sys.executable,
            "-m",
            "academy.cli",
            "autograde",
            "module1",
            "--workers",
            str(args.workers),
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for name in runs:
            Path(tmp, name).mkdir()
            root = copy_course(c, Path(tmp, name))
            sh(["nbgrader", "generate_assignment", "module1", "--force"], root)
            for i in range(args.submissions):
                folder = root / "submitted" / f"s{i:02d}" / "module1"
                folder.mkdir(parents=True)
                nb = submission(c, module, unsolved=variants[i % len(variants)])
                nbformat.write(nb, folder / module.notebook)
            roots[name] = root
        capacity = [machine_capacity(args.workers)]
        measured = {name: sh(command, roots[name]) for name, command in runs.items()}
        capacity.append(machine_capacity(args.workers))
        same = len({str(scores(root)) for root in roots.values()}) == 1
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.submissions
    base = measured["baseline"][0]
    print(f"{n} submissions of module 1, {args.workers} workers, {os.cpu_count()} cores")
    labels = {
        "baseline": "sequential, no speed work (baseline)",
        "sequential": "sequential, the course's pipeline",
        "parallel": f"f0 autograde --workers {args.workers}",
    }
    for name, (wall, cpu) in measured.items():
        print(
            f"  {labels[name]:<38}: {wall:6.1f} s ({wall / n:.2f} s each, {base / wall:.2f}x); "
            f"CPU {cpu / n:.2f} s each, {cpu / wall:.2f} cores busy"
        )
    parallel, sequential = measured["parallel"][0], measured["sequential"][0]
    print(f"  speed-up over the baseline           : {base / parallel:6.2f}x  (goal >= 2.5x)")
    print(f"  parallel over the course's sequential: {sequential / parallel:6.2f}x")
    print(
        f"  cores of work this machine delivered : {capacity[0]:.2f} before, {capacity[1]:.2f} "
        f"after (for {args.workers} CPU-bound processes; {args.workers} free cores give "
        f"{args.workers}.00)"
    )
    print(f"  same grades in all three gradebooks  : {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
