"""What a hidden test is: data (exercise, points, message) attached to a pytest function.

Otter-Grader's idea: a test case is data. Here the data rides on a pytest marker, so a
hidden suite stays an ordinary pytest file that instructors can read and run::

    @case("1.1", points=1, message="create_app_context() must store app.name = 'MyApp'")
    def test_app_name(learner):
        check(learner.create_app_context().get("app.name") == "MyApp")

The learner sees ``message`` (and ``check``'s optional detail) when the case fails, never
the test's source.

A long suite is a folder with one file per exercise; what several exercises share (helpers,
constants, session fixtures) lives in the folder's ``_support.py``, which the grader loads as
the module ``_support`` before the test files (``load_support``), so they write
``from _support import ...`` and name its fixtures as arguments, as they would a conftest's.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from academy.errors import CaseFailed

__all__ = [
    "CaseFailed",
    "case",
    "check",
    "in_worker",
    "is_a",
    "make_context",
    "raises",
    "worker_function",
    # confirmed from this side (see the end of this file)
    "call_method",
    "changed_in_worker",
    "confirm",
    "contains",
    "read_back",
]

F = TypeVar("F", bound=Callable[..., Any])

SUPPORT_MODULE = "_support"  # the name a folder suite's _support.py is loaded under


def load_support(path: Path) -> ModuleType:
    """Load a folder suite's ``_support.py`` as the module ``_support`` (in ``sys.modules``).

    The folder never goes on ``sys.path``: the test files' ``from _support import ...`` finds
    the loaded module by name. A reader of several suites removes it again in between
    (``academy.course.rules.suite_cases`` does).
    """
    spec = importlib.util.spec_from_file_location(SUPPORT_MODULE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[SUPPORT_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(SUPPORT_MODULE, None)
        raise
    return module


def case(
    exercise: str,
    points: float,
    message: str,
    *,
    rules: tuple[str, ...] | list[str] = (),
    critical: bool = False,
) -> Callable[[F], F]:
    """Mark a hidden test: which exercise it grades, its points, and what is wrong if it fails.

    ``rules`` names the notebook sentences the case checks, by the ids their markers carry
    (``("3.1-c",)`` for the sentence labelled ``[3.1-c]``); a failing case is shown with them,
    so the learner can find the sentence (``academy.course.rules`` checks every rule has a
    case and every case names a rule of its own exercise).

    ``critical=True`` marks a check whose failure means the component is unsafe or not what
    the exercise is about (authentication, tenant isolation, audit integrity, acknowledged
    writes, "a refused operation changes nothing", lost or reordered data, the complexity
    bound an exercise is about). Its points count as any other's, but a module with a failed
    critical case is not passed for certification, whatever its score
    (``academy.levels``; the rationale per module is in docs/critical-cases.md).
    """
    if points <= 0:
        raise ValueError("a case must be worth more than 0 points")
    if not message.strip():
        raise ValueError("a case needs a learner-facing message")
    if not isinstance(critical, bool):
        raise TypeError("critical must be True or False")
    if isinstance(rules, str) or not all(isinstance(r, str) for r in rules):
        raise TypeError("rules must be a tuple of rule ids such as ('3.1-c',)")
    return pytest.mark.f0_case(
        exercise=exercise,
        points=float(points),
        message=message,
        rules=tuple(rules),
        critical=critical,
    )


def check(condition: bool, detail: str = "") -> None:
    """Fail the case when ``condition`` is not exactly ``True``; ``detail`` is shown to the learner.

    Only the real ``True`` passes: a learner object can never stand in for a boolean here,
    because ``Remote`` objects refuse to be truth-tested.
    """
    if condition is not True:
        raise CaseFailed(detail)


def raises(call: Callable[[], Any], builtin: str, detail: str = "") -> Any:
    """Run ``call`` and require that the learner's code raises ``builtin`` (or a subclass)."""
    from academy.bridge.client import LearnerException

    try:
        value = call()
    except LearnerException as exc:
        if exc.is_a(builtin):
            return exc
        raise CaseFailed(f"{detail} (it raised {exc.type} instead of {builtin})".strip()) from exc
    raise CaseFailed(f"{detail} (nothing was raised; it returned {value!r})".strip())


def is_a(learner: Any, obj: Any, class_name: str) -> bool:
    """Is ``obj`` a learner object of class ``class_name`` (or a subclass)? Never trusts ``obj``."""
    from academy.bridge.client import Remote

    return isinstance(obj, Remote) and class_name in learner.builtin("mro", obj)


def make_context(learner: Any, items: dict[str, Any], who: str | None = "grader") -> Any:
    """A framework0 Context built in the learner's process (the notebook's setup imports it)."""
    ctx = learner.Context()
    for key, value in items.items():
        ctx.set(key, value, who=who)
    return ctx


def in_worker(learner: Any, source: str, *args: Any) -> Any:
    """Apply a grader-written lambda (``source``) to ``args`` inside the learner's worker."""
    from academy.bridge.client import expr

    return learner.make(expr(source))(*args)


def worker_function(learner: Any, source: str, name: str) -> Any:
    """Define grader-written functions (``source``) in the learner's worker; return ``name``."""
    from academy.bridge.client import expr

    return learner.make(expr(f"(lambda ns: (exec({source!r}, ns), ns[{name!r}])[1])({{}})"))


# --------------------------------------------------------------------------- trusted checks
# Grader code run in the learner's worker (``in_worker``, ``worker_function``,
# ``learner.make(expr(...))``) shares that process with the learner's code, which can skip it
# or fake what it returns. A verdict may rest on such code only when this side confirms what
# it did. The helpers below do that, or avoid grader code in the worker altogether: they call
# the learner's own methods over the bridge and read results back as plain data.


def call_method(learner: Any, obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """``obj.name(*args, **kwargs)`` on a learner object, dunder methods included.

    The worker looks the method up on the learner's object and calls it, as for
    ``obj.name(...)``: nothing grader-written runs there. (``Remote`` itself refuses dunder
    names, so that ``obj.__class__`` cannot be mistaken for a learner attribute.)
    """
    from academy.bridge.client import Remote

    if not isinstance(obj, Remote):
        raise TypeError(f"call_method needs a learner object, not {type(obj).__name__}")
    request = {"op": "callmethod", "target": obj._id, "name": name}
    return learner._invoke(request, args, kwargs)


def contains(learner: Any, container: Any, key: Any) -> bool:
    """``key in container``, as Python's ``in`` decides it, with no grader code in the worker.

    A learner object answers with its own ``__contains__`` over the bridge (its answer made a
    bool as ``in`` does); plain data (a dict sent back as JSON) is looked up here.
    """
    from academy.bridge.client import Remote

    if not isinstance(container, Remote):
        return key in container
    answer = call_method(learner, container, "__contains__", key)
    if isinstance(answer, Remote):
        raise CaseFailed(f"`in` gave {answer!r}, which has no plain truth value")
    return bool(answer)


def read_back(learner: Any, obj: Any) -> Any:
    """The current value of a live object in the worker (a kept list or dict), as plain data.

    Read through the bridge (``list([obj])`` there), so that a change the grader made to the
    object can be confirmed here.
    """
    return learner.builtin("list", [obj])[0]


def confirm(condition: bool, what: str) -> None:
    """Require that a step the grader took in the learner's process really happened.

    ``what`` names the step in the learner's terms. Skipping or faking the grader's steps
    then fails the case instead of passing it.
    """
    if condition is not True:
        raise CaseFailed(
            f"the grader's own step ({what}) did not take effect in your code's process, "
            "so the behaviour could not be checked"
        )


def changed_in_worker(learner: Any, source: str, *args: Any, expect: Any, what: str) -> Any:
    """Run a grader lambda that changes a value and returns it; confirm the change here.

    ``source`` must return the object it changed (for example what the learner's ``get()``
    returned, with one item appended); its plain value must equal ``expect``.
    """
    got = in_worker(learner, source, *args)
    confirm(got == expect, what)
    return got
