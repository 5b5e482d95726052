"""Turn an exercise's result into the outputs of its grade cell, as nbgrader reads them.

nbgrader scores a grade cell from its outputs: an ``execute_result`` holding a number is
partial credit, and any ``stderr`` or ``error`` output scores 0. So the outputs are exactly a
markdown summary for the learner (display data, never stderr) and the score.
"""

from __future__ import annotations

from typing import Any

from academy.grading.suite_runner import ExerciseResult


def exercise_summary(result: ExerciseResult, load_problems: list[dict[str, Any]]) -> str:
    """Markdown: the score, then what is wrong, in words; never the hidden tests' code."""
    ex = result.exercise
    cases = result.cases
    passed = sum(1 for c in cases if c.passed)
    lines = [
        f"**Exercise {ex.id} · {ex.title}: {result.score:g} / {ex.points:g} points** "
        f"({passed} of {len(cases)} checks passed)"
    ]
    for problem in result.problems:
        lines.append(f"- ⚠️ Could not be graded completely: {problem}")
    critical = result.critical_failures
    if critical:
        lines.append(
            f"- ⛔ **{len(critical)} critical check(s) failed: this blocks the module, and "
            "every level that needs it, whatever the score** (the points are kept):"
        )
        for case in critical:
            detail = f" ({_one_line(case.detail)})" if case.detail else ""
            lines.append(f"  - ⛔ CRITICAL: {case.cited}{detail} [{case.points:g} pt]")
    for case in cases:
        if not case.passed and not case.critical:
            detail = f" ({_one_line(case.detail)})" if case.detail else ""
            lines.append(f"- ✗ {case.cited}{detail} [{case.points:g} pt]")
    if result.score < ex.points:
        for loading in load_problems:
            error = loading["error"]
            lines.append(
                f"- Note: while loading your code, {loading['label']} raised "
                f"{error['type']}: {_one_line(error['message'])}"
            )
    return "\n".join(lines)


def exercise_outputs(
    result: ExerciseResult, load_problems: list[dict[str, Any]], cap: float
) -> list[dict[str, Any]]:
    text = exercise_summary(result, load_problems)
    score = min(result.score, cap)
    return [
        {
            "output_type": "display_data",
            # read back by ``academy.certificates.issue.critical_from_notebook`` for f0 issue
            "metadata": {
                "academy": {
                    "exercise": result.exercise.id,
                    "critical_failed": [
                        f"{c.exercise}: {c.cited}" for c in result.critical_failures
                    ],
                }
            },
            "data": {"text/markdown": text, "text/plain": text},
        },
        {
            "output_type": "execute_result",
            "metadata": {},
            "execution_count": None,
            "data": {"text/plain": f"{score:g}"},
        },
    ]


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
