"""Parallel `f0 autograde` against sequential stock `nbgrader autograde`, in the same run.

Builds a temporary copy of the course with N module-1 submissions (a mix of complete and
partial work) and grades them three times, into separate gradebooks:

* sequential stock `nbgrader autograde`, each student's hidden suite after their kernel
  (`--StartHiddenSuites.enabled=False`: the pipeline as it was before the overlap): the baseline;
* sequential `nbgrader autograde` with the course's pipeline (suite alongside the kernel);
* parallel `f0 autograde --workers W` (the course's pipeline, batches on W processes).

It checks all three give the same grades, and prints the speed-ups over the baseline and the
per-submission overhead over executing the notebook alone.

    python benchmarks/bench_grading.py [--submissions 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from course_tools import course, submission  # noqa: E402

from academy.build import copy_course, tool_env  # noqa: E402


def sh(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall-clock seconds, and the CPU seconds the command and its children used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=tool_env(), check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


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
    with tempfile.TemporaryDirectory() as tmp:
        roots = []
        for name in ("sequential", "overlap", "parallel"):
            Path(tmp, name).mkdir()
            root = copy_course(c, Path(tmp, name))
            sh(["nbgrader", "generate_assignment", "module1", "--force"], root)
            for i in range(args.submissions):
                folder = root / "submitted" / f"s{i:02d}" / "module1"
                folder.mkdir(parents=True)
                nb = submission(c, module, unsolved=variants[i % len(variants)])
                nbformat.write(nb, folder / module.notebook)
            roots.append(root)
        nb = nbformat.read(roots[0] / "submitted" / "s00" / "module1" / module.notebook, 4)
        start = time.perf_counter()
        NotebookClient(
            nb, timeout=60, shutdown_kernel="immediate", resources={"metadata": {"path": tmp}}
        ).execute()
        bare = time.perf_counter() - start
        sequential, sequential_cpu = sh(
            ["nbgrader", "autograde", "module1", "--StartHiddenSuites.enabled=False"], roots[0]
        )
        overlap, _ = sh(["nbgrader", "autograde", "module1"], roots[1])
        parallel, parallel_cpu = sh(
            [
                sys.executable,
                "-m",
                "academy.cli",
                "autograde",
                "module1",
                "--workers",
                str(args.workers),
            ],
            roots[2],
        )
        same = scores(roots[0]) == scores(roots[1]) == scores(roots[2])
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.submissions
    print(f"{n} submissions of module 1, {args.workers} workers, {os.cpu_count()} cores")
    print(f"  sequential, suite after kernel: {sequential:7.1f} s  ({sequential / n:.2f} s each)")
    print(
        f"  sequential, suite alongside   : {overlap:7.1f} s  ({overlap / n:.2f} s each, "
        f"{sequential / overlap:.2f}x)"
    )
    print(f"  parallel f0 autograde         : {parallel:7.1f} s  ({parallel / n:.2f} s each)")
    print(f"  speed-up over the baseline    : {sequential / parallel:7.2f}x  (goal >= 2.5x)")
    print(f"  bare kernel start + execution : {bare:7.2f} s per notebook")
    print(
        f"  grading overhead over bare    : {sequential / n / bare:7.2f}x sequential, "
        f"{parallel * args.workers / n / bare:.2f}x per worker in parallel"
    )
    print(
        f"  CPU busy (cores in use)       : {sequential_cpu / sequential:7.2f} sequential, "
        f"{parallel_cpu / parallel:.2f} parallel (CPU of finished child processes)"
    )
    print(f"  same grades in both gradebooks: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
