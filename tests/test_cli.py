"""The learner's f0 command: check and hint."""

from __future__ import annotations

import json
import shutil
import sys

import nbformat
from course_tools import course, run, submission

COURSE = course()
MODULE = COURSE.module("module1")
F0 = [sys.executable, "-m", "academy.cli"]


def test_check_exits_zero_only_at_full_marks(tmp_path):
    good = tmp_path / "good.ipynb"
    nbformat.write(submission(COURSE, MODULE), good)
    proc = run([*F0, "check", "1", str(good)], COURSE.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Total: 16 / 16" in proc.stdout
    released = run([*F0, "check", "module1", "--json"], COURSE.root)
    assert released.returncode == 1
    report = json.loads(released.stdout[released.stdout.index("{") :])
    assert report["score"] == 0 and report["max_points"] == 16
    assert report["exercises"]["1.5"]["cases"][0]["message"]


def test_check_names_an_unreadable_notebook(tmp_path):
    missing = tmp_path / "nope.ipynb"
    proc = run([*F0, "check", "module1", str(missing)], COURSE.root)
    assert proc.returncode == 2 and "nope.ipynb" in proc.stdout


def test_hints_come_one_more_each_time(tmp_path):
    for name in ("course.yaml",):
        shutil.copy(COURSE.root / name, tmp_path / name)
    hints = MODULE.exercise("1.3").hints
    seen = []
    for _ in range(len(hints) + 1):
        proc = run([*F0, "hint", "module1", "1.3"], tmp_path)
        assert proc.returncode == 0
        seen.append(proc.stdout)
    for index, hint in enumerate(hints):
        assert f"Hint {index + 1} of {len(hints)}" in seen[index]
        assert hint.split()[0] in seen[index]
    assert "last hint" in seen[-1]


def test_unknown_module_is_a_clear_error():
    proc = run([*F0, "check", "module42"], COURSE.root)
    assert proc.returncode == 2 and "module1" in proc.stdout
