"""Critical cases: a module passes for certification only at the pass mark **and** with no
failed critical case (``@case(..., critical=True)``); scores keep their partial credit.

The issue's examples (tokens accepted with another algorithm or unchecked signatures, a
quorum of half the replicas rounded up, a plain LRU passed off as a predictive cache, an O(n)
LRU) each reach the 80% pass mark, and each must fail a critical case and stay unpassed.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from course_tools import MUTANTS, apply_mutant, course, mutants, run, submission

from academy.grading.render import exercise_outputs, exercise_summary
from academy.grading.suite_runner import CaseResult, ExerciseResult, run_hidden_suite
from academy.learner.feedback import summarise
from academy.learner.progress import ModuleRecord, ProgressStore
from academy.levels import LevelRules, ModuleStanding, pass_mark, passes

COURSE = course()
F0 = [sys.executable, "-m", "academy.cli"]
WIDE = {"COLUMNS": "200"}
DOCS = COURSE.root / "docs" / "critical-cases.md"


def critical_cases(module) -> list[str]:
    """The names of the module's suite's cases marked critical=True (read from its source:
    the suite file, or each test file of a folder suite)."""
    names = []
    for path in COURSE.suite_tests(module):
        names += _critical_in(ast.parse(path.read_text(encoding="utf-8")))
    return names


def _critical_in(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "case":
                if any(k.arg == "critical" and k.value.value is True for k in deco.keywords):
                    names.append(node.name)
    return names


# ------------------------------------------------------------------ rules, without grading
def test_every_suite_marks_critical_cases_and_the_docs_list_them():
    text = DOCS.read_text(encoding="utf-8")
    for module in COURSE.modules:
        names = critical_cases(module)
        assert names, f"{module.id}: no case is marked critical"
        for name in names:
            assert name in text, f"docs/critical-cases.md does not list {module.id}'s {name}"


def test_a_module_at_the_pass_mark_with_a_critical_failure_is_not_passed():
    module = COURSE.module("module1")
    score = module.points * 0.9
    assert passes(module, score)
    failed = ("1.5: a rejected MiniContext.set() must change nothing",)
    assert not passes(module, score, failed)
    standing = ModuleStanding(module, score, failed)
    assert not standing.passed and standing.blocked
    assert "critical check failed" in standing.shortfall()
    assert "a rejected MiniContext.set() must change nothing" in standing.shortfall()


def test_no_level_is_awarded_while_a_critical_case_of_one_of_its_modules_failed():
    rules = LevelRules(COURSE)
    scores = {m.id: m.points for m in COURSE.modules}
    assert rules.highest(scores) is not None
    top = rules.highest(scores)
    blocked = {"module1": ["1.4: safe_set() must refuse non-JSON data and change nothing"]}
    best = rules.highest(scores, blocked)
    assert best is None or all(s.module.id != "module1" for s in best.modules)
    status = rules.status(top.level, scores, blocked)
    assert not status.reached
    assert any("safe_set()" in line for line in status.missing())


def fake_result(module, critical_passed: bool) -> ExerciseResult:
    exercise = module.exercises[0]
    cases = [
        CaseResult("t_ok", exercise.id, exercise.points - 0.5, "the ordinary check", True),
        CaseResult(
            "t_crit",
            exercise.id,
            0.5,
            "a refused write must change nothing",
            critical_passed,
            "the value was stored",
            "wrong",
            critical=True,
        ),
    ]
    return ExerciseResult(exercise, cases)


def test_feedback_shows_a_critical_failure_apart_and_says_it_blocks_the_level():
    module = COURSE.module("module1")
    result = fake_result(module, critical_passed=False)
    text = exercise_summary(result, [])
    assert "CRITICAL: a refused write must change nothing" in text
    assert "blocks the module" in text
    outputs = exercise_outputs(result, [], result.exercise.points)
    meta = outputs[0]["metadata"]["academy"]
    assert meta["critical_failed"] == [f"{result.exercise.id}: a refused write must change nothing"]
    assert outputs[1]["data"]["text/plain"] == f"{result.exercise.points - 0.5:g}"

    class Report:
        exercises = {result.exercise.id: result}

    line = summarise(Report, set())[0]
    assert line.critical and "critical check failed (blocks the level)" in line.text()
    assert "critical" not in exercise_summary(fake_result(module, True), []).lower()


def test_progress_keeps_the_check_that_passes_for_certification_as_the_best(tmp_path):
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(COURSE.root / "course.yaml", root / "course.yaml")
    from academy import manifest

    store = ProgressStore(manifest.load(root))
    module = COURSE.module("module1")

    def record(score, critical=()):
        return ModuleRecord(
            "module1", score, 16, {}, "2026-01-01T00:00:00Z", "n.ipynb", "x", False, critical
        )

    store.record(record(14.0))
    update = store.record(record(15.5, ("1.5: a rejected set() must change nothing",)))
    assert update.below_best  # the passing check stays the best
    best = store.records()["module1"]
    assert best.score == 14.0 and passes(module, best.score, best.critical_failed)
    store.record(record(16.0))
    assert store.records()["module1"].score == 16.0
    raw = json.loads(store.path.read_text())
    assert raw["modules"]["module1"]["latest"]["critical_failed"] == []


# ------------------------------------------------------------------ the issue's examples
ISSUE_EXAMPLES = [
    ("module8", "security_alg_from_header"),
    ("module8", "security_signature_not_verified"),
    ("module8", "quorum_half_rounded_up"),
    ("module8", "cache_plain_lru"),
    ("module7", "get_scans_entries"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("module_id", "mutant_id"), ISSUE_EXAMPLES, ids=lambda x: x)
def test_the_issues_serious_bugs_fail_a_critical_case_and_block_the_module(module_id, mutant_id):
    module = COURSE.module(module_id)
    mutant = next(m for m in mutants(module) if m["id"] == mutant_id)
    report = run_hidden_suite(
        COURSE, module, apply_mutant(COURSE, module, mutant), only=set(mutant["loses"])
    )
    # The other exercises are the reference's (full marks: test_grading), so the module's
    # score is its points less what this exercise lost.
    lost = sum(r.exercise.points - r.score for r in report.exercises.values())
    score = module.points - lost
    assert 0 < lost and passes(module, score), (mutant_id, score, pass_mark(module))
    failed = report.critical_failed()
    assert failed, f"{mutant_id} failed no critical case"
    assert not passes(module, score, failed)
    scores = {m.id: m.points for m in COURSE.modules} | {module.id: score}
    rules = LevelRules(COURSE)
    for status in rules.statuses(scores, {module.id: failed}):
        if any(s.module.id == module.id for s in status.modules):
            assert not status.reached, status.level.id


def test_the_issues_examples_are_in_the_mutant_catalogues():
    for module_id, mutant_id in ISSUE_EXAMPLES:
        catalogue = yaml.safe_load((MUTANTS / f"{module_id}.yaml").read_text())
        assert mutant_id in {m["id"] for m in catalogue}


# ------------------------------------------------------------------ f0 check and progress
MODULE = COURSE.module("module1")
BRONZE_IS_MODULE_1 = [{"id": "bronze", "title": "Context Fundamentals", "modules": [1]}]


def course_copy(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "autograder").mkdir(parents=True)
    shutil.copy(COURSE.suite_path(MODULE), root / MODULE.suite)
    shutil.copytree(COURSE.release_notebook(MODULE).parent, root / "exercises" / MODULE.id)
    raw = yaml.safe_load((COURSE.root / "course.yaml").read_text())
    raw["modules"] = [m for m in raw["modules"] if m["id"] == MODULE.id]
    raw["levels"] = BRONZE_IS_MODULE_1
    (root / "course.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def test_f0_check_and_progress_name_a_critical_failure_and_withhold_the_level(tmp_path):
    root = course_copy(tmp_path)
    mutant = next(m for m in mutants(MODULE) if m["id"] == "accepts_non_json")
    notebook = tmp_path / "mine.ipynb"
    nbformat.write(apply_mutant(COURSE, MODULE, mutant), notebook)
    proc = run([*F0, "check", "1", str(notebook)], root, env=WIDE)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "critical check(s) failed" in out and "whatever the score" in out, out
    assert "must raise TypeError for values that are not JSON data" in out, out
    assert "is not passed" in out and "Module 1 passed" not in out, out
    progress = run([*F0, "progress"], root, env=WIDE).stdout
    assert "blocked" in progress and "Level reached: none yet" in progress, progress
    assert "critical check" in progress, progress


def test_f0_check_exits_zero_at_the_pass_mark_and_says_what_is_still_open(tmp_path):
    root = course_copy(tmp_path)
    notebook = tmp_path / "mine.ipynb"
    nbformat.write(submission(COURSE, MODULE, unsolved=("ex_1_3_solution",)), notebook)
    proc = run([*F0, "check", "1", str(notebook)], root, env=WIDE)
    assert proc.returncode == 0, proc.stdout
    assert "Module 1 passed: 13 / 16" in proc.stdout, proc.stdout
    assert "3 point(s) are still open" in proc.stdout, proc.stdout
    below = tmp_path / "below.ipynb"
    nbformat.write(
        submission(COURSE, MODULE, unsolved=("ex_1_3_solution", "ex_1_2_solution")), below
    )
    proc = run([*F0, "check", "1", str(below)], root, env=WIDE)
    assert proc.returncode == 1 and "is not passed yet: 11 / 16" in proc.stdout, proc.stdout
