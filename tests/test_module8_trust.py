"""Module 8's hidden suite must not trust anything measured or computed in the learner's process.

The learner's code runs in the worker, so it can replace ``exec``, ``compile`` and the clocks
there. A submission once scored 16.5 of 32 with the untouched stubs plus one cell that waited
for the grader to load the reference solution into the worker, copied its classes over the
stubs, and faked ``time.perf_counter``: the reference was graded as the learner's code, and the
speed checks compared it with itself. The reference now runs in a worker of its own, and speed
is timed in the grading process; the same cell must now earn nothing, and must cost an honest
submission nothing. Nor may skipping or faking the grader's other steps in the worker rescue a
known-wrong solution.
"""

from __future__ import annotations

import nbformat
import pytest
from course_tools import apply_mutant, course, mutants, solution_sources, submission

from academy.grading.suite_runner import run_hidden_suite

COURSE = course()
MODULE = next(m for m in COURSE.modules if m.id == "module8")

# Every class and function that the exercises ask for: what a stolen reference would replace.
EXERCISE_NAMES = (
    "TenantManager",
    "TenantContext",
    "SecurityManager",
    "AuditLogger",
    "DistributedContextService",
    "HealthMonitor",
    "SmartCacheManager",
    "RealTimeAnalytics",
    "PerformanceOptimizer",
    "ContextMaster",
)

HIJACK = f'''
import builtins
import sys
import time
import types

_exec, _compile, _perf_counter = builtins.exec, builtins.compile, time.perf_counter
_WANTED = {EXERCISE_NAMES!r}
_stolen = []


def _adopt(namespace):
    """Copy every class and function of a namespace that defines exercise classes."""
    learner = sys.modules["__learner__"].__dict__
    if not isinstance(namespace, dict) or namespace is learner:
        return
    if not any(isinstance(namespace.get(name), type) for name in _WANTED):
        return
    for name, value in list(namespace.items()):
        if isinstance(value, (type, types.FunctionType)):
            learner[name] = value
    _stolen.append(sorted(namespace))


def _watching_exec(source, *args, **kwargs):
    result = _exec(source, *args, **kwargs)
    _adopt(args[0] if args else kwargs.get("globals"))
    return result


def _watching_compile(source, *args, **kwargs):
    code = _compile(source, *args, **kwargs)
    if isinstance(source, str) and "class ContextMaster" in source:
        _stolen.append("compiled a reference")
    return code


_ticks = [_perf_counter()]


def _fast_clock():
    """A clock under which everything looks fast: a nanosecond per reading."""
    _ticks[0] += 1e-9
    return _ticks[0]


builtins.exec = _watching_exec
builtins.compile = _watching_compile
time.perf_counter = _fast_clock
'''


# The grader's lambdas come to the worker as source for eval(): make every change they make to
# a returned value a no-op, so that "changing the result did not change what is stored" holds.
SKIP_GRADER_CHANGES = r"""
import builtins

_eval = builtins.eval


def _unchanging_eval(source, *args, **kwargs):
    if isinstance(source, str):
        source = source.replace(".__setitem__(", ".get(")
    return _eval(source, *args, **kwargs)


builtins.eval = _unchanging_eval
"""

# Swap the grader's cache replay for one that reports a hit for every repeated key.
FAKE_REPLAY = r"""
import builtins

_exec = builtins.exec


def _replaying_exec(source, *args, **kwargs):
    result = _exec(source, *args, **kwargs)
    namespace = args[0] if args else kwargs.get("globals")
    if isinstance(namespace, dict) and callable(namespace.get("c_replay")):
        real = namespace["c_replay"]

        def c_replay(cache, workload_source, seed):
            run = real(cache, workload_source, seed)
            space = {}
            _exec(workload_source, space)
            seen, hits = set(), []
            for key, _hint in space["cache_workload"](seed):
                hits.append("1" if key in seen else "0")
                seen.add(key)
            count = hits.count("1")
            run["stats"] = dict(run["stats"], hits=count, misses=len(hits) - count)
            run["hits"] = "".join(hits) if isinstance(run["hits"], str) else count
            return run

        namespace["c_replay"] = c_replay
    return result


builtins.exec = _replaying_exec
"""

# The reference service made 20 times slower (by CPU time, so a busy machine changes nothing).
SLOW_SERVICE = """

_process_operation = DistributedContextService.process_operation


async def _slow_process_operation(self, *args, **kwargs):
    import time as _time

    started = _time.process_time()
    result = await _process_operation(self, *args, **kwargs)
    until = _time.process_time() + (_time.process_time() - started) * 19
    while _time.process_time() < until:
        pass
    return result


DistributedContextService.process_operation = _slow_process_operation
"""


def with_cell(nb, source):
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def with_hijack(nb):
    return with_cell(nb, HIJACK)


def grade(nb, only=None):
    report = run_hidden_suite(COURSE, MODULE, nb, only=only)
    assert not report.load_problems, report.load_problems
    return report


def mutant(mutant_id):
    return apply_mutant(COURSE, MODULE, next(m for m in mutants(MODULE) if m["id"] == mutant_id))


def slow_service():
    source = solution_sources(COURSE, MODULE)["ex_8_4_solution"] + SLOW_SERVICE
    return submission(COURSE, MODULE, replace={"ex_8_4_solution": source})


@pytest.mark.parametrize("module", [MODULE], ids=lambda m: m.id)
def test_stealing_the_reference_and_faking_the_clock_earns_nothing(module):
    nb = with_hijack(nbformat.read(COURSE.release_notebook(module), as_version=4))
    report = grade(nb)
    earned = {key: r.score for key, r in report.exercises.items() if r.score}
    assert report.score == 0, earned


@pytest.mark.parametrize("module", [MODULE], ids=lambda m: m.id)
def test_the_same_cell_costs_the_reference_solution_nothing(module):
    report = grade(with_hijack(submission(COURSE, module)))
    failed = [
        (c.name, c.detail) for r in report.exercises.values() for c in r.cases if not c.passed
    ]
    assert failed == []
    assert report.score == module.points
    assert not report.flagged


WRONG_BUT_FAKING = {
    # a log that hands out its own entries, with the grader's changes skipped
    "entries_not_copied+skipped_changes": (
        lambda: with_cell(mutant("audit_entries_not_copied"), SKIP_GRADER_CHANGES),
        "8.3",
    ),
    # plain LRU, with a replay that claims a hit for every repeated key
    "plain_lru+faked_replay": (lambda: with_cell(mutant("cache_plain_lru"), FAKE_REPLAY), "8.6"),
    # a service 20 times slower than the reference, timed with a clock that barely moves
    "slow_service+fake_clock": (lambda: with_hijack(slow_service()), "8.4"),
}


@pytest.mark.parametrize("attack", sorted(WRONG_BUT_FAKING))
def test_faking_the_graders_steps_does_not_rescue_a_wrong_solution(attack):
    build, exercise = WRONG_BUT_FAKING[attack]
    report = grade(build(), only={exercise})
    result = report.exercises[exercise]
    assert result.score < result.exercise.points, [c.name for c in result.cases]
