"""The untrusted half of the bridge: runs learner code and answers questions about it.

This process is started by the trusted grader (``academy.bridge.client``) with ``python -I``
in an empty folder and resource limits. It holds the learner's objects; the grader only
ever sees plain JSON describing them. Whatever the learner's code does here (patching
modules, printing fake scores, returning objects whose ``==`` is always true) it cannot
reach the assertions, which run in the grader's process.

Protocol: one JSON request per line on file descriptor ``REQ_FD``, one JSON reply per line
on ``REP_FD``. Every request carries an ``id`` and every line this worker writes for it (the
reply, and while loading the ``{"id": ..., "progress": cell}`` lines) echoes that id. stdout
and stderr belong to the learner's code and are never parsed.

The learner's code runs in this process and can write on ``REP_FD`` too (or read the request
being served). The grader therefore treats what comes back as the learner's data: it reads
only the line naming the request it is waiting for, ignores every other line, and fixes each
request's deadline when it sends it (see ``academy.bridge.client.Learner._exchange``).
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

from academy.bridge.protocol import TAG, decode, encode


class Worker:
    """Executes requests against the learner's namespace and a table of live objects."""

    def __init__(self, progress: Any = None) -> None:
        self.progress = progress or (lambda index: None)
        # A real module, so dataclasses, typing.get_type_hints and pickle find learner classes.
        module = types.ModuleType("__learner__")
        sys.modules["__learner__"] = module
        self.namespace: dict[str, Any] = module.__dict__
        self.namespace.update(
            {
                "__builtins__": builtins,
                "display": _display,  # notebook code may call these outside a kernel
                "get_ipython": lambda: None,
            }
        )
        self.objects: dict[int, Any] = {}
        self.next_handle = 1

    # ---------------------------------------------------------------- encoding
    def encode(self, value: Any) -> Any:
        """Plain JSON for exact JSON types (and framework0's loaded recipes, which are dicts
        carrying their YAML lines); a handle to a live object for anything else."""
        return encode(value, self.handle, plain_dicts=_plain_dicts())

    def handle(self, value: Any) -> dict[str, Any]:
        number = self.next_handle
        self.next_handle += 1
        self.objects[number] = value
        return {TAG: "handle", "id": number, "type": _type_name(value), "repr": _safe_repr(value)}

    def decode(self, value: Any) -> Any:
        return decode(value, self._tagged)

    def _tagged(self, value: dict[str, Any]) -> Any:
        tag = value[TAG]
        if tag == "handle":
            return self.objects[value["id"]]
        if tag == "expr":  # the grader builds a value JSON cannot carry, e.g. {1, 2}
            return eval(value["source"], {"__builtins__": builtins})  # noqa: S307
        raise ValueError(f"unknown tag {tag!r}")

    # ---------------------------------------------------------------- requests
    def target(self, ref: int | None) -> Any:
        if ref is None:
            module = types.SimpleNamespace(**self.namespace)
            return module
        return self.objects[ref]

    def serve(self, request: dict[str, Any]) -> dict[str, Any]:
        for ref in request.get("release") or ():  # handles the grader no longer holds
            self.objects.pop(ref, None)
        op = request["op"]
        if op == "load":
            return {"value": self.load(request["cells"])}
        if op == "keep":  # a live object in the worker, e.g. a list the grader mutates later
            return {"value": self.handle(self.decode(request["value"]))}
        try:
            value = self.run(op, request)
            # "handle": the grader asked for the object itself (a returned list it will change,
            # or compare by identity), not a plain copy of it
            return {"value": self.handle(value) if request.get("handle") else self.encode(value)}
        except BaseException as exc:  # the learner's exception is an answer, not a crash
            if isinstance(exc, KeyboardInterrupt):
                raise
            return {"raised": describe_exception(exc)}

    def run(self, op: str, request: dict[str, Any]) -> Any:
        if op == "has":
            return request["name"] in self.namespace
        if op == "same":  # identity of two kept objects: `is`, which no learner class can override
            first, second = (self.objects[ref] for ref in request["ids"])
            return first is second
        if op == "getattr":
            if request.get("target") is None:
                if request["name"] not in self.namespace:
                    raise NameError(f"name {request['name']!r} is not defined")
                return self.namespace[request["name"]]
            return getattr(self.target(request["target"]), request["name"])
        if op == "setattr":
            setattr(self.target(request["target"]), request["name"], self.decode(request["value"]))
            return None
        args = [self.decode(a) for a in request.get("args", [])]
        kwargs = {k: self.decode(v) for k, v in request.get("kwargs", {}).items()}
        if op == "call":
            return self.target(request["target"])(*args, **kwargs)
        if op == "callmethod":
            return getattr(self.target(request["target"]), request["name"])(*args, **kwargs)
        if op == "eval":
            return self.decode({TAG: "expr", "source": request["source"]})
        if op == "builtin":  # len(), list(), isinstance checks the grader asks about
            functions: dict[str, Callable[..., Any]] = {
                "len": len,
                "list": list,
                "repr": _safe_repr,
                "str": str,
                "sorted": sorted,
                "dict": dict,
                "type": _type_name,
                "mro": _mro,
            }
            return functions[request["name"]](*args)
        raise ValueError(f"unknown operation {op!r}")

    def load(self, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run the learner's cells in order; a failing cell is reported, the rest still run."""
        problems = []
        for cell in cells:
            label = cell.get("label", f"cell {cell['index']}")
            self.progress(cell["index"])  # if this cell hangs or kills us, the grader knows which
            try:
                code = compile(
                    strip_magics(cell["source"]), f"<{label}>", "exec", dont_inherit=True
                )
                exec(code, self.namespace)  # noqa: S102 - running learner code is the point
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                problems.append(
                    {"cell": cell["index"], "label": label, "error": describe_exception(exc)}
                )
        return problems


def _display(*objects: Any, **_: Any) -> None:
    for obj in objects:
        print(_safe_repr(obj))


def strip_magics(source: str) -> str:
    """Notebook-only lines (``%time``, ``!pip``) mean nothing outside a kernel; drop them."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__name__
        if kind.__module__ in ("builtins", "__learner__")
        else (f"{kind.__module__}.{kind.__qualname__}")
    )


def _plain_dicts() -> tuple[type, ...]:
    """framework0's ``LoadedRecipe`` when the learner's code loaded framework0: a dict with
    line numbers, sent as the plain dict it is (a learner returning ``load_recipe(...)`` where
    a mapping is asked for gets the same answer as with ``yaml.safe_load``)."""
    module = sys.modules.get("framework0.recipe_parser")
    kind = getattr(module, "LoadedRecipe", None)
    return (kind,) if isinstance(kind, type) and issubclass(kind, dict) else ()


def _mro(value: Any) -> list[str]:
    kind = value if isinstance(value, type) else type(value)
    return [k.__name__ for k in kind.__mro__]


def _safe_repr(value: Any, limit: int = 300) -> str:
    try:
        text = repr(value)
    except BaseException:  # noqa: BLE001 - a broken __repr__ is the learner's business
        text = f"<{type(value).__name__} object with a failing __repr__>"
    if not isinstance(text, str):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> dict[str, Any]:
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001
        message = "<the exception's __str__ failed>"
    frames = traceback.extract_tb(exc.__traceback__)
    learner_frames = [f for f in frames if f.filename.startswith("<")]
    where = learner_frames[-1] if learner_frames else None
    return {
        "type": type(exc).__name__,
        "mro": [k.__name__ for k in type(exc).__mro__],
        "message": message[:2000],
        "where": f"{where.filename.strip('<>')}, line {where.lineno}" if where else "",
    }


def main() -> None:
    req_fd, rep_fd = int(sys.argv[1]), int(sys.argv[2])
    requests = os.fdopen(req_fd, "r", encoding="utf-8")
    owner = os.getpid()
    current: dict[str, Any] = {"id": None}  # the id of the request being served

    def speak(message: dict[str, Any]) -> None:
        if os.getpid() != owner:  # a fork made by learner code came back here: never answer
            os._exit(0)
        try:
            text = json.dumps(dict(message, id=current["id"]), allow_nan=False)
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            problem = f"{type(exc).__name__}: {exc}"
            text = json.dumps({"protocol_error": problem, "id": current["id"]})
        # One write, starting with a newline: a partial line that learner code left on the
        # pipe ends there instead of swallowing this reply (a pipe write up to 4 KiB is atomic).
        data = ("\n" + text + "\n").encode()
        while data:
            data = data[os.write(rep_fd, data) :]

    def progress(index: int) -> None:
        speak({"progress": index})

    worker = Worker(progress)
    for line in requests:
        try:
            request = json.loads(line)
            current["id"] = request.get("id")
        except (ValueError, AttributeError) as exc:
            current["id"] = None
            speak({"protocol_error": f"unreadable request: {type(exc).__name__}"})
            continue
        try:
            reply = worker.serve(request)
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            reply = {"protocol_error": f"{type(exc).__name__}: {exc}"}
        speak(reply)


if __name__ == "__main__":
    main()
