"""What a hidden test is: data (exercise, points, message) attached to a pytest function.

Otter-Grader's idea: a test case is data. Here the data rides on a pytest marker, so a
hidden suite stays an ordinary pytest file that instructors can read and run::

    @case("1.1", points=1, message="create_app_context() must store app.name = 'MyApp'")
    def test_app_name(learner):
        check(learner.create_app_context().get("app.name") == "MyApp")

The learner sees ``message`` (and ``check``'s optional detail) when the case fails, never
the test's source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

__all__ = [
    "CaseFailed",
    "case",
    "check",
    "in_worker",
    "is_a",
    "make_context",
    "raises",
    "worker_function",
]

F = TypeVar("F", bound=Callable[..., Any])


class CaseFailed(AssertionError):
    """A hidden check failed; its text is shown to the learner, so it must not quote tests."""


def case(exercise: str, points: float, message: str) -> Callable[[F], F]:
    """Mark a hidden test: which exercise it grades, its points, and what is wrong if it fails."""
    if points <= 0:
        raise ValueError("a case must be worth more than 0 points")
    if not message.strip():
        raise ValueError("a case needs a learner-facing message")
    return pytest.mark.f0_case(exercise=exercise, points=float(points), message=message)


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
