"""The seed curriculum's Context exercises run unchanged against framework0.

tests/fixtures/seed/ holds the scripts from /work/shared/seeds/000_b87fe724f5c3eafe.txt,
copied verbatim except for the imports (``orchestrator.context`` -> ``framework0.context``,
``src.core.logger`` -> ``framework0.logger``). Each one runs in its own interpreter with
DEBUG=1, as a learner would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = Path(__file__).resolve().parent / "fixtures" / "seed"

EXERCISES = {
    "exercise_1_1.py": "Exercise 1.1 completed successfully",
    "exercise_1_2.py": "Exercise 1.2 completed successfully",
    "exercise_2_2.py": "Exercise 2.2 completed successfully",
    "exercise_3_2.py": "Exercise 3.2 completed successfully",
    "exercise_4_1.py": "Exercise 4.1 completed successfully",
}


def run_seed(name: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBUG="1", PYTHONIOENCODING="utf-8")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(SEED / name)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
    )


def test_every_seed_script_is_covered() -> None:
    assert sorted(p.name for p in SEED.glob("*.py")) == sorted(
        [*EXERCISES, "demonstrate_basic_operations.py"]
    )


@pytest.mark.parametrize(("name", "final_line"), sorted(EXERCISES.items()))
def test_seed_exercise_runs_to_completion(name: str, final_line: str) -> None:
    result = run_seed(name)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "the exercise logged nothing"
    assert final_line in lines[-1] and "INFO" in lines[-1], result.stderr
    assert "DEBUG" in result.stderr, "DEBUG=1 must turn on the exercise's debug lines"
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr


def test_seed_demonstration_prints_the_expected_values() -> None:
    result = run_seed("demonstrate_basic_operations.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Database Host: localhost",
        "Database Port: 5432",
        "CPU Usage: 45.7%",
        "Missing value: None",
        "Timeout (default): 30",
    ]
    assert "Created new Context instance" in result.stderr
    assert "DEBUG" in result.stderr
