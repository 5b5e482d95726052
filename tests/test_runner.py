"""run_recipe and its CLI: order, only/skip, retries, timeouts, error types, exit codes."""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from framework0.context import Context
from framework0.errors import (
    RecipeError,
    RecipeValidationError,
    StepFailedError,
    StepNotRunError,
    UnknownTaskError,
)
from framework0.runner import NOTEBOOK_MODULE, run_recipe
from framework0.scriptlets import BaseScriptlet

# One xdist worker runs this whole file, so its module-scoped fixtures are built once.
pytestmark = pytest.mark.xdist_group("runner")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "framework0" / "recipes" / "example_numbers.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
RECIPES = FIXTURES / "recipes"
TEST_PKG = "scriptlets_for_tests"


@pytest.fixture(autouse=True)
def _test_scriptlets_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.delenv("FRAMEWORK0_ALLOWED_PACKAGES", raising=False)


def run(path: Path, **kwargs: Any) -> Context:
    kwargs.setdefault("allowed_packages", [TEST_PKG])
    return run_recipe(path, **kwargs)


def write(tmp_path: Path, *steps: dict[str, Any], name: str = "recipe.yaml") -> Path:
    """A recipe of test scriptlets; ``idx`` follows list order unless given."""
    full = [
        {"idx": i, "module": TEST_PKG, "function": "Record", **s} for i, s in enumerate(steps, 1)
    ]
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"steps": full}, sort_keys=False))
    return path


# ---------------------------------------------------------------- the example recipe
def test_example_recipe_computes_stats_and_median(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)  # numbers.csv resolves against the recipe's folder, not cwd
    ctx = run_recipe(EXAMPLE)
    values = [4, 8, 15, 16, 23, 42]
    assert ctx.get("numbers.values") == values
    assert ctx.get("numbers.stats") == {
        "count": 6,
        "mean": statistics.fmean(values),
        "variance": statistics.pvariance(values),
        "min": 4,
        "max": 42,
    }
    assert ctx.get("numbers.median") == 15.5
    assert ctx.get("run.plan") == ["compute_numbers", "compute_median"]
    assert ctx.get("run.steps.compute_median.status") == "ok"
    who = {e["key"]: e["step"] for e in ctx.get_history()}
    assert who["numbers.stats"] == who["numbers.values"] == "compute_numbers"
    assert who["numbers.median"] == "compute_median"
    assert who["run.plan"] == "runner"


def numbers_recipe(tmp_path: Path, csv_text: str | None) -> Path:
    if csv_text is not None:
        (tmp_path / "data.csv").write_text(csv_text)
    path = tmp_path / "numbers.yaml"
    path.write_text(
        "steps:\n  - {idx: 1, name: load, module: framework0.scriptlets.steps.compute_numbers,"
        " function: ComputeNumbers, args: {src: data.csv}}\n"
    )
    return path


def test_bad_csv_cell_fails_the_step_naming_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(StepFailedError) as info:
        run_recipe(numbers_recipe(tmp_path, "1,2\n3,x\n"))
    message = str(info.value)
    assert message.startswith("step 'load': run() raised ValueError: ")
    assert f"{tmp_path / 'data.csv'}, line 2, column 2: 'x' is not a number" in message


def test_missing_csv_means_the_step_could_not_run(tmp_path: Path) -> None:
    with pytest.raises(StepNotRunError, match=r"src file not found: .*data\.csv"):
        run_recipe(numbers_recipe(tmp_path, None))


# ---------------------------------------------------------------- order and selection
def test_steps_run_in_dependency_order_ties_by_idx() -> None:
    ctx = run(RECIPES / "chain.yaml")
    assert ctx.get("trace") == ["a", "b", "c", "d"]
    assert ctx.get("run.plan") == ["a", "b", "c", "d"]


def test_idx_order_yields_to_dependencies(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "x", "depends_on": ["z"]}, {"name": "y"}, {"name": "z"})
    assert run(path).get("trace") == ["y", "z", "x"]


def test_only_runs_the_steps_and_their_transitive_dependencies() -> None:
    assert run(RECIPES / "chain.yaml", only=["c"]).get("trace") == ["a", "b", "c"]
    assert run(RECIPES / "chain.yaml", only="d").get("trace") == ["d"]


def test_skip_leaves_out_steps_nobody_needs() -> None:
    ctx = run(RECIPES / "chain.yaml", skip=["d", "c"])
    assert ctx.get("trace") == ["a", "b"]
    assert ctx.get("run.steps.d.status") == "skipped"


def test_skipping_a_dependency_refuses_before_running_anything() -> None:
    with pytest.raises(StepNotRunError) as info:
        run(RECIPES / "chain.yaml", skip=["a"])
    assert str(info.value) == (
        "step 'b': depends on skipped step(s) 'a'; steps that cannot run: b, c "
        "(skip them too, or stop skipping their dependencies)"
    )
    ctx = info.value.ctx  # type: ignore[attr-defined]
    assert "trace" not in ctx
    assert ctx.get("run.error")["phase"] == "plan"
    # only + skip: c needs b, which is skipped
    with pytest.raises(StepNotRunError, match="steps that cannot run: c "):
        run(RECIPES / "chain.yaml", only=["c"], skip=["b"])


def test_only_and_skip_follow_dependencies_through_every_level(tmp_path: Path) -> None:
    # a <- b, a <- c, {b, c} <- d; e on its own.
    path = write(
        tmp_path,
        {"name": "a"},
        {"name": "b", "depends_on": ["a"]},
        {"name": "c", "depends_on": ["a"]},
        {"name": "d", "depends_on": ["c", "b"]},
        {"name": "e"},
    )
    assert run(path, only=["b", "c"]).get("trace") == ["a", "b", "c"]
    assert run(path, only=["d"]).get("trace") == ["a", "b", "c", "d"]
    assert run(path, only=["d"], skip=["e"]).get("trace") == ["a", "b", "c", "d"]
    with pytest.raises(StepNotRunError) as info:
        run(path, only=["d"], skip=["a"])
    assert str(info.value) == (
        "step 'b': depends on skipped step(s) 'a'; steps that cannot run: b, c, d "
        "(skip them too, or stop skipping their dependencies)"
    )
    # d needs a only through b and c, which are skipped too: d is the one that cannot run.
    with pytest.raises(
        StepNotRunError, match=r"skipped step\(s\) 'b', 'c'; steps that cannot run: d "
    ):
        run(path, skip=["a", "b", "c"])


def test_unknown_only_or_skip_names_are_named() -> None:
    with pytest.raises(UnknownTaskError) as info:
        run(RECIPES / "chain.yaml", only=["a", "zz", "yy"])
    assert str(info.value) == (
        "unknown task 'zz' in only; also unknown: 'yy' (steps in the recipe: a, b, c, d)"
    )
    with pytest.raises(UnknownTaskError, match="unknown task 'q' in skip"):
        run(RECIPES / "chain.yaml", skip=["q"])


def test_dry_run_plans_without_importing_or_running(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "a", "module": f"{TEST_PKG}_missing"}, {"name": "b"})
    ctx = run(path, dry_run=True, only=["a"], allowed_packages=[TEST_PKG, f"{TEST_PKG}_missing"])
    assert ctx.get("run.plan") == ["a"]
    assert "trace" not in ctx and "run.steps.a.status" not in ctx


def test_invalid_recipe_runs_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "a"}, {"name": "b", "depends_on": ["nope"]})
    ctx = Context()
    with pytest.raises(RecipeValidationError, match="unknown step 'nope'"):
        run(path, ctx=ctx)
    assert len(ctx) == 0
    with pytest.raises(RecipeError, match="not found"):
        run(tmp_path / "absent.yaml")


def test_given_context_is_used_and_returned() -> None:
    ctx = Context()
    ctx.set("seed", 1)
    assert run(RECIPES / "chain.yaml", ctx=ctx) is ctx
    assert ctx.get("seed") == 1 and ctx.get("d.done") is True


# ---------------------------------------------------------------- allow-list and loading
def test_module_outside_allowed_packages_is_refused_before_running(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "a"}, {"name": "b", "module": "os.path", "function": "X"})
    with pytest.raises(StepNotRunError) as info:
        run(path)
    assert "step 'b': module 'os.path' is not in an allowed package" in str(info.value)
    assert "trace" not in info.value.ctx  # type: ignore[attr-defined]
    # a prefix is not a package: scriptlets_for_tests_x is not inside scriptlets_for_tests
    path = write(tmp_path, {"name": "a", "module": f"{TEST_PKG}_x"})
    with pytest.raises(StepNotRunError, match="not in an allowed package"):
        run(path)


def test_env_var_extends_the_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEWORK0_ALLOWED_PACKAGES", f" other.pkg , {TEST_PKG}")
    assert run_recipe(RECIPES / "chain.yaml").get("trace") == ["a", "b", "c", "d"]
    monkeypatch.delenv("FRAMEWORK0_ALLOWED_PACKAGES")
    with pytest.raises(StepNotRunError, match="allowed_packages"):
        run_recipe(RECIPES / "chain.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"module": f"{TEST_PKG}.nothere"}, "cannot import module 'scriptlets_for_tests.nothere'"),
        ({"function": "Missing"}, "module 'scriptlets_for_tests' has no 'Missing'"),
        ({"function": "NotAScriptlet"}, "NotAScriptlet is not a BaseScriptlet subclass"),
        ({"function": "Refuse"}, "validate() refused: ValueError: not today"),
        ({"function": "Flaky"}, "missing required param(s) 'fails' in args"),
    ],
)
def test_steps_that_cannot_run(tmp_path: Path, change: dict[str, str], message: str) -> None:
    path = write(tmp_path, {"name": "first"}, {"name": "second", **change})
    with pytest.raises(StepNotRunError) as info:
        run(path)
    assert info.value.step == "second" and message in str(info.value)
    ctx = info.value.ctx  # type: ignore[attr-defined]
    assert ctx.get("run.steps.second.status") == "not_run"
    assert ctx.get("run.error")["type"] == "StepNotRunError"
    assert ctx.get("trace") == ["first"]


# ---------------------------------------------------------------- failures
def test_failure_stops_the_run_and_is_recorded() -> None:
    with pytest.raises(StepFailedError) as info:
        run(RECIPES / "failing.yaml")
    exc = info.value
    assert str(exc) == "step 'explode': run() raised RuntimeError: kaboom"
    assert isinstance(exc.__cause__, RuntimeError)
    ctx = exc.ctx  # type: ignore[attr-defined]
    assert ctx.get("trace") == ["ok_first", "explode"]
    assert ctx.get("run.error") == {
        "step": "explode",
        "type": "StepFailedError",
        "message": str(exc),
        "phase": "run",
    }
    assert ctx.get("run.steps.explode.status") == "failed"
    assert "run.steps.never.status" not in ctx


@pytest.mark.parametrize(("code", "shown"), [(3, "3"), (None, "None"), (False, "False")])
def test_non_zero_return_fails(tmp_path: Path, code: Any, shown: str) -> None:
    path = write(tmp_path, {"name": "r", "function": "ReturnCode", "args": {"code": code}})
    with pytest.raises(StepFailedError, match=rf"step 'r': run\(\) returned {shown}; 0 means"):
        run(path)


def test_missing_success_keys_fail_the_step(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "s", "success": {"ctx_has_keys": ["s.done", "x.y", "z"]}})
    with pytest.raises(StepFailedError, match=r"did not set ctx key\(s\) 'x.y', 'z'$"):
        run(path)


def test_retry_reruns_until_success(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "name": "f",
            "function": "Flaky",
            "args": {"fails": 2},
            "retry": {"max": 2, "delay_sec": 0.05},
        },
    )
    started = time.monotonic()
    ctx = run(path)
    assert time.monotonic() - started >= 0.1  # two delays
    assert ctx.get("f.calls") == 3 and ctx.get("run.steps.f.attempts") == 3
    assert ctx.get("run.steps.f.status") == "ok"


def test_retry_gives_up_after_max_extra_attempts(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"name": "f", "function": "Flaky", "args": {"fails": 5}, "retry": {"max": 1}}
    )
    with pytest.raises(StepFailedError) as info:
        run(path)
    assert str(info.value) == (
        "step 'f': run() raised ConnectionError: flaky call 2 (after 2 attempts)"
    )
    assert info.value.ctx.get("f.calls") == 2  # type: ignore[attr-defined]


def test_timeout_fails_the_step_without_waiting(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "slow", "function": "Slow", "args": {"sec": 3}, "timeout": 0.1})
    started = time.monotonic()
    with pytest.raises(StepFailedError, match=r"step 'slow': timed out after 0.1s"):
        run(path)
    assert time.monotonic() - started < 1.5


def test_fast_step_within_timeout_succeeds(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "quick", "function": "Slow", "args": {"sec": 0}, "timeout": 5})
    assert run(path).get("run.steps.quick.status") == "ok"


# ---------------------------------------------------------------- CLI
@pytest.fixture(scope="module", autouse=True)
def cli_process() -> Iterator[subprocess.Popen[str]]:
    """One real ``python -m framework0.runner`` run, started when this module starts.

    A fresh interpreter can take seconds to import jsonschema (its optional
    rfc3987_syntax extra builds a grammar on import), so the process runs while the
    in-process tests do; every other CLI test calls ``main()`` directly.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(FIXTURES), env.get("PYTHONPATH", "")) if p
    )
    env["FRAMEWORK0_ALLOWED_PACKAGES"] = TEST_PKG
    proc = subprocess.Popen(
        [sys.executable, "-m", "framework0.runner", "--recipe", str(RECIPES / "failing.yaml")],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def summary_of(lines: list[str]) -> dict[str, Any]:
    assert len(lines) == 1, lines  # exactly one line on stdout: the JSON summary
    return json.loads(lines[0])


def test_cli_process_failure_exits_1_with_one_json_line_and_no_traceback(
    cli_process: subprocess.Popen[str],
) -> None:
    out, stderr = cli_process.communicate(timeout=60)
    summary = summary_of(out.splitlines())
    assert cli_process.returncode == 1 and summary["ok"] is False
    assert summary["error"]["step"] == "explode"
    assert summary["error"]["type"] == "StepFailedError"
    assert "[1/3] ok_first" in stderr and "kaboom" in stderr
    assert "Traceback" not in stderr


@pytest.fixture
def main_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, dict[str, Any], str]]:
    """Call ``main`` in-process; returns (exit code, JSON summary, runner log text)."""
    from framework0.logger import get_logger
    from framework0.runner import main

    log = io.StringIO()
    for handler in get_logger("framework0.runner").handlers:
        monkeypatch.setattr(handler, "stream", log)
    monkeypatch.setenv("FRAMEWORK0_ALLOWED_PACKAGES", TEST_PKG)

    def call(*args: str) -> tuple[int, dict[str, Any], str]:
        code = main(list(args))
        return code, summary_of(capsys.readouterr().out.splitlines()), log.getvalue()

    return call


def test_cli_success(main_cli: Any) -> None:
    code, summary, log = main_cli("--recipe", str(EXAMPLE))
    assert code == 0 and summary["ok"] is True
    assert summary["steps"] == ["compute_numbers", "compute_median"]
    assert summary["keys"] == 9  # values, stats, median + 6 run.* keys
    assert "[2/2] compute_median" in log


def test_cli_only_skip_and_dry_run(main_cli: Any) -> None:
    code, summary, _ = main_cli(
        "--recipe", str(RECIPES / "chain.yaml"), "--only", "c", "d", "--skip", "d", "--dry-run"
    )
    assert (code, summary["steps"], summary["dry_run"]) == (0, ["a", "b", "c"], True)


def test_cli_debug_shows_the_traceback(main_cli: Any) -> None:
    code, summary, log = main_cli("--recipe", str(RECIPES / "failing.yaml"), "--debug")
    assert code == 1 and summary["error"]["step"] == "explode"
    assert "Traceback" in log and "RuntimeError: kaboom" in log


@pytest.mark.parametrize(
    ("args", "error_type"),
    [
        (["--recipe", "does/not/exist.yaml"], "RecipeError"),
        (["--recipe", str(RECIPES / "invalid.yaml")], "RecipeValidationError"),
        (["--recipe", str(RECIPES / "chain.yaml"), "--skip", "a"], "StepNotRunError"),
        (["--recipe", str(RECIPES / "chain.yaml"), "--only", "nope"], "UnknownTaskError"),
        (["--only", "a"], "UsageError"),
    ],
)
def test_cli_user_mistakes_exit_2_without_traceback(
    main_cli: Any, args: list[str], error_type: str
) -> None:
    code, summary, log = main_cli(*args)
    assert code == 2 and summary["ok"] is False
    assert summary["error"]["type"] == error_type
    assert "Traceback" not in log
    if error_type == "RecipeValidationError":
        assert len(summary["error"]["problems"]) == 5
        assert summary["error"]["problems"][0].startswith("step 'load' (line 6): ")
    if error_type == "RecipeError":
        assert "does/not/exist.yaml" in summary["error"]["message"]


# ---------------------------------------------------------------- notebook scriptlets
class Greet(BaseScriptlet):
    """A scriptlet no module can import, as if written in a notebook cell."""

    def run(self, ctx: Context, params: Mapping[str, Any]) -> int:
        ctx.set("trace", [*ctx.get("trace", []), params["_step"]], who=self.step_name(params))
        ctx.set(f"{params['_step']}.greeting", f"hello {params.get('to', 'world')}", who="x")
        return 0


class Plain:
    def run(self, ctx: Context, params: Mapping[str, Any]) -> int:  # pragma: no cover
        return 0


def test_notebook_steps_take_their_class_from_scriptlets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"name": "second", "module": NOTEBOOK_MODULE, "function": "Greet", "depends_on": ["a"]},
        {"name": "a"},  # an imported step beside notebook steps
        {"name": "third", "module": NOTEBOOK_MODULE, "function": "Greet", "args": {"to": "you"}},
    )
    ctx = run(path, scriptlets={"Greet": Greet})
    assert ctx.get("trace") == ["a", "second", "third"]
    assert ctx.get("third.greeting") == "hello you"
    assert ctx.get("run.steps.second.status") == "ok"
    # no allow-list entry is needed: nothing is imported
    assert run_recipe(path, only=["third"], scriptlets={"Greet": Greet}).get("trace") == ["third"]


def test_a_name_missing_from_scriptlets_refuses_the_run_before_anything_starts(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path, {"name": "a"}, {"name": "b", "module": NOTEBOOK_MODULE, "function": "Gone"}
    )
    for given in (None, {"Greet": Greet}):
        with pytest.raises(StepNotRunError) as info:
            run(path, scriptlets=given)
        assert str(info.value).startswith(
            "step 'b': module 'notebook' takes its class from run_recipe(scriptlets=...), "
            "which has no 'Gone' (given: "
        )
        ctx = info.value.ctx  # type: ignore[attr-defined]
        assert ctx.get("run.error")["phase"] == "plan" and "trace" not in ctx
    with pytest.raises(StepNotRunError, match=r"\(given: Greet\)"):
        run(path, scriptlets={"Greet": Greet}, dry_run=True)
    assert run(path, scriptlets={"Greet": Greet}, only=["a"]).get("trace") == ["a"]


def test_notebook_classes_are_checked_like_imported_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"name": "a"}, {"name": "b", "module": NOTEBOOK_MODULE, "function": "Plain"}
    )
    for bad in (Plain, Greet(), "Greet"):
        with pytest.raises(StepNotRunError, match="notebook.Plain is not a BaseScriptlet subclass"):
            run(path, scriptlets={"Plain": bad})
    ctx = Context()
    with pytest.raises(StepNotRunError):
        run(path, ctx=ctx, scriptlets={"Plain": Plain})
    assert ctx.get("run.steps.b.status") == "not_run" and ctx.get("trace") == ["a"]


def test_scriptlets_do_not_replace_imported_classes(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "a", "function": "Greet"})  # module scriptlets_for_tests
    with pytest.raises(StepNotRunError, match="module 'scriptlets_for_tests' has no 'Greet'"):
        run(path, scriptlets={"Greet": Greet})
