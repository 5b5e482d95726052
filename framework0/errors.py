"""The one error root of framework0.

Catch ``Framework0Error`` to handle anything framework0 raises on purpose. Each
error also derives from the built-in exception a Python programmer would expect
(a bad value is a ``TypeError``, bad text is a ``ValueError``), so code written
against plain dicts and ``json`` keeps working::

    Framework0Error
    ├── ContextError
    │   ├── InvalidKeyError          (TypeError, ValueError)  key is not a non-empty str
    │   ├── NotJSONError             (TypeError)   value is not JSON data; names key and path
    │   └── ContextDecodeError       (ValueError)  from_json() got bad JSON or not an object
    ├── GraphError
    │   ├── CycleError               (ValueError)  names the cycle, e.g. "a -> b -> a"
    │   └── UnknownTaskError         (KeyError)    names the task
    ├── RecipeError
    │   └── RecipeValidationError    (ValueError)  lists every problem: step, field, line
    ├── RunError
    │   ├── StepFailedError          the scriptlet ran and failed (raised or returned non-zero)
    │   └── StepNotRunError          the step could not be loaded, validated or started
    ├── PersistenceError
    │   └── CorruptStateError        (ValueError)  names the unreadable file
    └── BusError                     the context server answered with an error
"""

from __future__ import annotations


class Framework0Error(Exception):
    """Root of every error framework0 raises on purpose."""


class ContextError(Framework0Error):
    """A Context operation was given something it cannot store."""


class InvalidKeyError(ContextError, TypeError, ValueError):
    """A key is not a non-empty string."""


class NotJSONError(ContextError, TypeError):
    """A value is not JSON data; the message names the key and the path inside the value."""

    def __init__(self, key: str, path: str, reason: str) -> None:
        self.key = key
        self.path = path
        self.reason = reason
        super().__init__(f"cannot store {key!r}: {path} {reason}")


class ContextDecodeError(ContextError, ValueError):
    """Text given to ``Context.from_json`` is not a JSON object of JSON data."""


class GraphError(Framework0Error):
    """A dependency graph is inconsistent."""


class CycleError(GraphError, ValueError):
    """Tasks depend on each other in a circle; ``cycle`` lists it, first node repeated last."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


class UnknownTaskError(GraphError, KeyError):
    """A task name that the graph does not hold."""

    def __init__(self, name: str, where: str = "") -> None:
        self.name = name
        super().__init__(f"unknown task {name!r}{where}")

    def __str__(self) -> str:  # KeyError would quote the whole message again
        return str(self.args[0])


class RecipeError(Framework0Error):
    """A recipe file cannot be read."""


class RecipeValidationError(RecipeError, ValueError):
    """A recipe breaks the schema or its own references; ``problems`` lists each one."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class RunError(Framework0Error):
    """A recipe run stopped."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(f"step {step!r}: {message}")


class StepFailedError(RunError):
    """The step's scriptlet ran and failed: it raised or returned a non-zero code."""


class StepNotRunError(RunError):
    """The step could not run at all: its scriptlet could not be imported, built or validated."""


class PersistenceError(Framework0Error):
    """Saved state cannot be written or read."""


class CorruptStateError(PersistenceError, ValueError):
    """A persisted file is unreadable; the message names it."""


class BusError(Framework0Error):
    """The context server refused a request."""
