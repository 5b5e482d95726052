"""The trusted half of the bridge: talk to learner code that runs in another process.

Hidden tests use ``Learner`` like a module: ``learner.Context()`` builds a learner object in
the worker and returns a ``Remote`` proxy; calling its methods returns plain Python data
(decoded from JSON with exact types) or further proxies. A ``Remote`` compares equal only to
itself, so an always-equal object can never satisfy an assertion, and every assertion runs
here, out of the learner's reach.

The worker is bounded: a wall-clock deadline per request, and CPU, memory, file-size and
open-file limits. When it hangs or dies, the request raises ``LearnerTimeout`` or
``LearnerCrashed`` and the next request starts a fresh worker with the learner's code.

The reply pipe is not the grader's alone: the learner's code runs in the worker and may write
on any descriptor it inherits. So each request carries a fresh random id, and only a line
naming that id answers it; every other line (no id, an old or guessed id, not JSON) is
dropped and counted in ``Learner.stray_lines``. We drop rather than end the worker: a stray
line can then cost its author nothing but time, and it cannot buy time either, since a
request's deadline is fixed when the request is sent. Loading progress (which cell is
running, used to leave out a cell that hangs) counts only with the load request's id and
only for a cell that is being loaded; it never moves the deadline. Learner code that reads
the id of the request being served can answer that one request itself, which gives it
nothing it does not already have: the answer to a call is the learner's data anyway, and
every check on it runs here.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from academy.bridge.cgroup import LearnerCgroup
from academy.bridge.protocol import TAG, decode, encode
from academy.bridge.sandbox import Sandbox
from academy.errors import AcademyError

__all__ = [
    "Learner",
    "LearnerCrashed",
    "LearnerError",
    "LearnerException",
    "LearnerTimeout",
    "Limits",
    "Remote",
    "expr",
]


class LearnerError(AcademyError):
    """The learner's code could not answer (it hung or crashed); the message says which."""


class LearnerTimeout(LearnerError):
    """A request to the learner's code ran past its deadline; the worker was killed."""


class LearnerCrashed(LearnerError):
    """The worker process ended while answering (os._exit, a segfault, a memory kill)."""


class LearnerException(AcademyError):
    """The learner's code raised; ``type``, ``mro`` and ``message`` describe the exception."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.type: str = info["type"]
        self.mro: list[str] = info["mro"]
        self.message: str = info["message"]
        self.where: str = info.get("where", "")
        where = f" ({self.where})" if self.where else ""
        super().__init__(f"{self.type}: {self.message}{where}")

    def is_a(self, name: str) -> bool:
        """True when the learner's exception is, or derives from, the built-in ``name``."""
        return name in self.mro


@dataclass(frozen=True)
class Limits:
    """What one worker may use. Defaults suit the course's exercises on a 2-core machine."""

    call_seconds: float = 10.0
    load_seconds: float = 30.0
    cpu_seconds: int = 120
    memory_mb: int = 2048
    file_size_mb: int = 64
    open_files: int = 256
    max_processes: int = 64  # processes and threads, via a pids cgroup where one can be made
    sandbox: str = "auto"  # see academy.bridge.sandbox: auto, require or off
    max_left_out: int = 5  # cells left out for hanging or crashing while loading, at most


@dataclass(frozen=True)
class expr:  # noqa: N801 - reads like a constructor in tests: expr("{1, 2}")
    """A value JSON cannot carry (a set, a datetime), built in the worker from this source."""

    source: str


class Remote:
    """A learner object living in the worker. Equal only to itself."""

    __slots__ = ("_learner", "_id", "_type", "_repr", "__weakref__")

    def __init__(self, learner: Learner, ref: int, type_name: str, text: str) -> None:
        object.__setattr__(self, "_learner", learner)
        object.__setattr__(self, "_id", ref)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_repr", text)
        # When this handle is gone, the worker may drop the object (sent with the next request).
        weakref.finalize(self, learner._released.append, (learner._spawns, ref))

    @property
    def remote_type(self) -> str:
        return self._type

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _BoundName(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._learner._request(
            {
                "op": "setattr",
                "target": self._id,
                "name": name,
                "value": self._learner._encode(value),
            }
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._learner._invoke({"op": "call", "target": self._id}, args, kwargs)

    def live(self, *args: Any, **kwargs: Any) -> Remote:
        """Call this learner function and keep its result in the worker, even plain data
        (``remote.method.live(...)`` does the same for a method)."""
        return self._learner._invoke(
            {"op": "call", "target": self._id, "handle": True}, args, kwargs
        )

    def __repr__(self) -> str:
        return f"<learner {self._type}: {self._repr}>"

    def __bool__(self) -> bool:
        raise TypeError("a learner object has no trusted truth value; compare a plain result")

    def __len__(self) -> int:
        return self._learner.builtin("len", self)


class _BoundName:
    """``remote.name``: call it, or fetch it with ``.value()``."""

    def __init__(self, owner: Remote, name: str) -> None:
        self.owner = owner
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        learner = self.owner._learner
        request = {"op": "callmethod", "target": self.owner._id, "name": self.name}
        return learner._invoke(request, args, kwargs)

    def value(self) -> Any:
        return self.owner._learner._request(
            {"op": "getattr", "target": self.owner._id, "name": self.name}
        )

    def live(self, *args: Any, **kwargs: Any) -> Remote:
        """Call the method and keep what it returns in the worker, even plain data: the
        object itself, to change it there or compare it by identity (``Learner.same``)."""
        learner = self.owner._learner
        request = {"op": "callmethod", "target": self.owner._id, "name": self.name}
        return learner._invoke(dict(request, handle=True), args, kwargs)

    def live_value(self) -> Remote:
        """The attribute itself, kept in the worker (see ``live``)."""
        return self.owner._learner._request(
            {"op": "getattr", "target": self.owner._id, "name": self.name, "handle": True}
        )

    def __getattr__(self, name: str) -> Any:
        value = self.value()
        if isinstance(value, Remote):
            return getattr(value, name)
        raise AttributeError(f"{self.name} is a plain value, it has no attribute {name!r}")


@dataclass
class Learner:
    """The learner's code, loaded from notebook cells into a bounded worker process."""

    cells: list[dict[str, Any]]
    limits: Limits = field(default_factory=Limits)
    python: str = sys.executable
    load_problems: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    stray_lines: int = 0  # lines on the reply pipe that answered no pending request
    _proc: subprocess.Popen[bytes] | None = None
    _req: Any = None
    _rep: Any = None
    _buffer: bytes = b""
    _workdir: tempfile.TemporaryDirectory[str] | None = None
    _progress: int | None = None
    _loading: frozenset[int] = frozenset()
    _cgroup: LearnerCgroup | None = None
    _spawns: int = 0  # workers started so far: a handle belongs to the worker that made it
    _released: list[tuple[int, int]] = field(default_factory=list)  # (worker, handle) to drop

    # ---------------------------------------------------------------- public API
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._request({"op": "getattr", "target": None, "name": name})

    def has(self, name: str) -> bool:
        """Did the learner's code define ``name``?"""
        return bool(self._request({"op": "has", "name": name}))

    def builtin(self, name: str, *args: Any) -> Any:
        """Apply ``len``, ``list``, ``repr``, ``str``, ``type`` or ``mro`` in the worker."""
        return self._invoke({"op": "builtin", "name": name}, args, {})

    def same(self, first: Remote, second: Remote) -> bool:
        """``first is second`` in the worker: whether two kept learner results are one object
        (``Remote`` handles are new for every answer, so ``==`` on them says nothing)."""
        for value in (first, second):
            if not isinstance(value, Remote) or value._learner is not self:
                raise TypeError("same() compares objects kept in this learner's worker")
        return self._request({"op": "same", "ids": [first._id, second._id]}) is True

    def make(self, value: expr) -> Remote:
        """Build a non-JSON value (``expr("{1, 2}")``) in the worker."""
        return self._request({"op": "eval", "source": value.source})

    @property
    def workdir(self) -> str:
        """The worker's own folder: the one place both the grader and learner code can reach
        (the sandboxed worker has a private /tmp), e.g. for files a test checks."""
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="f0-learner-")
        return self._workdir.name

    def keep(self, value: Any) -> Remote:
        """Send ``value`` and keep it alive in the worker as an object (a mutable list, say)."""
        return self._request({"op": "keep", "value": self._encode(value)})

    def close(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is not None:
            _kill_group(proc)
        if self._cgroup is not None:
            self._cgroup.remove()  # also what escaped the process group: daemons, forks
            self._cgroup = None
        for pipe in (self._req, self._rep):
            if pipe is not None:
                try:
                    os.close(pipe)
                except OSError:
                    pass
        self._req = self._rep = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Learner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- plumbing
    def _invoke(
        self, request: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        request = dict(
            request,
            args=[self._encode(a) for a in args],
            kwargs={k: self._encode(v) for k, v in kwargs.items()},
        )
        return self._request(request)

    def _encode(self, value: Any) -> Any:
        return encode(value, self._encode_leaf, str_keys=True)

    def _encode_leaf(self, value: Any) -> Any:
        if isinstance(value, Remote):
            if value._learner is not self:
                raise ValueError("a Remote from another Learner cannot be sent here")
            return {TAG: "handle", "id": value._id}
        if isinstance(value, expr):
            return {TAG: "expr", "source": value.source}
        raise TypeError(f"cannot send a {type(value).__name__} to the learner; use expr(...)")

    def _decode(self, value: Any) -> Any:
        return decode(value, self._decode_tagged)

    def _decode_tagged(self, value: dict[str, Any]) -> Any:
        if value[TAG] == "handle":
            return Remote(self, value["id"], value["type"], value["repr"])
        return value  # a tag only the grader sends: plain data here

    def _request(self, request: dict[str, Any]) -> Any:
        if self._proc is None:
            self._start()
        reply = self._exchange(request, self.limits.call_seconds)
        try:
            if "raised" in reply:
                info = reply["raised"]
                if not _is_error(info):
                    raise TypeError("malformed exception")
                error = LearnerException(info)
            elif "value" in reply:
                return self._decode(reply["value"])
            else:
                problem = reply.get("protocol_error", "no value in the answer")
                raise LearnerCrashed(f"the grader could not read your code's answer: {problem}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LearnerCrashed(
                f"the grader could not read your code's answer ({type(exc).__name__})"
            ) from None
        raise error

    def _start(self) -> None:
        """Start a worker and load the learner's cells into it.

        A cell that hangs or ends the process while loading is left out, reported in
        ``load_problems``, and the load starts again without it: such a cell costs the
        learner what depends on it, not the whole notebook.
        """
        while True:
            self._spawn()
            left_out = self._left_out_cells()
            cells = [c for c in self.cells if c["index"] not in left_out]
            try:
                reply = self._load_cells(cells)
            except LearnerError as exc:
                problem = self._leave_out_culprit(exc, cells, left_out)
                if problem is None:
                    raise
                self.load_problems.append(problem)
                continue
            self._keep_load_problems(reply)
            return

    def _left_out_cells(self) -> set[int]:
        """The cells left out of earlier loads for hanging or ending the worker."""
        return {p["cell"] for p in self.load_problems if p.get("left_out")}

    def _load_cells(self, cells: list[dict[str, Any]]) -> dict[str, Any]:
        """Send the load request, noting which cell is running (``_progress``) meanwhile."""
        self._progress = None
        self._loading = frozenset(c["index"] for c in cells)
        try:
            return self._exchange({"op": "load", "cells": cells}, self.limits.load_seconds)
        finally:
            self._loading = frozenset()

    def _leave_out_culprit(
        self, exc: LearnerError, cells: list[dict[str, Any]], left_out: set[int]
    ) -> dict[str, Any] | None:
        """The load problem that leaves out the cell that was running when loading failed.

        None when no cell can be blamed (none was running, or it was left out already): the
        failure is then the learner's whole notebook's. Raises when too many cells are out.
        """
        culprit = self._progress
        if culprit is None or culprit in left_out:
            return None
        if len(left_out) >= self.limits.max_left_out:
            raise type(exc)(
                f"{exc}; {len(left_out)} cells were left out already, the most "
                "the grader leaves out"
            ) from None
        label = next(c.get("label", f"cell {culprit}") for c in cells if c["index"] == culprit)
        return _left_out_problem(culprit, label, exc)

    def _keep_load_problems(self, reply: dict[str, Any]) -> None:
        """Record the problems the worker reported while loading, after the left-out cells."""
        problems = reply.get("value")
        if not _are_load_problems(problems):
            self.close()
            raise LearnerCrashed("the grader could not load your notebook's code")
        kept = [p for p in self.load_problems if p.get("left_out")]
        self.load_problems = kept + problems

    def _spawn(self) -> None:
        self._spawns += 1
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="f0-learner-")
        req_read, req_write = os.pipe()
        rep_read, rep_write = os.pipe()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self._workdir.name,
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            "LANG": "C.UTF-8",
        }
        if self._cgroup is not None:
            self._cgroup.remove()
        self._cgroup = LearnerCgroup(self.limits.max_processes)
        self._cgroup.create()
        try:
            command = [
                self.python,
                "-I",
                "-m",
                "academy.bridge.worker",
                str(req_read),
                str(rep_write),
            ]
            self._proc = subprocess.Popen(
                Sandbox(self.limits.sandbox).wrap(command, self._workdir.name, env),
                cwd=self._workdir.name,
                env=env,
                pass_fds=(req_read, rep_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=self._apply_limits,
            )
        finally:
            os.close(req_read)
            os.close(rep_write)
        self._req, self._rep, self._buffer = req_write, rep_read, b""

    def _apply_limits(self) -> None:  # runs in the child, before exec
        limits = self.limits
        if self._cgroup is not None:
            self._cgroup.join()
        mb = 1024 * 1024
        for name, value in (
            ("RLIMIT_AS", limits.memory_mb * mb),
            ("RLIMIT_CPU", limits.cpu_seconds),
            ("RLIMIT_FSIZE", limits.file_size_mb * mb),
            ("RLIMIT_NOFILE", limits.open_files),
            ("RLIMIT_CORE", 0),
        ):
            resource.setrlimit(getattr(resource, name), (value, value))

    def _exchange(self, request: dict[str, Any], seconds: float) -> dict[str, Any]:
        """Send ``request`` with a fresh id and wait up to ``seconds`` for the reply naming it.

        The deadline is fixed here, before anything is read: no line on the reply pipe (a
        progress message, a stray or forged reply) can move it. Lines that do not name this
        request are dropped; see the module docstring.
        """
        assert self._proc is not None
        rid = secrets.token_hex(12)
        released = [ref for spawn, ref in self._released if spawn == self._spawns]
        self._released.clear()
        if released:  # objects no handle refers to any more: the worker's table stays small
            request = dict(request, release=released)
        try:
            payload = json.dumps(dict(request, id=rid), allow_nan=False) + "\n"
            os.write(self._req, payload.encode())
        except (BrokenPipeError, OSError):
            return self._died()
        deadline = time.monotonic() + seconds
        tag = rid.encode()
        while True:
            while b"\n" in self._buffer:
                line, _, self._buffer = self._buffer.partition(b"\n")
                if not line:
                    continue  # the worker starts each line with a newline: see worker.main
                message = _parse(line) if tag in line else None
                if message is None or message.get("id") != rid:
                    self.stray_lines += 1
                    continue
                if "progress" in message:
                    cell = message["progress"]
                    if type(cell) is int and cell in self._loading:
                        self._progress = cell  # loading moved on to this cell
                    continue
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                self.restarts += 1
                raise LearnerTimeout(
                    f"your code did not finish within {seconds:g} s (an endless loop, or "
                    "waiting for something that never comes?)"
                )
            ready, _, _ = select.select([self._rep], [], [], left)
            if ready:
                chunk = os.read(self._rep, 1 << 16)
                if not chunk:
                    return self._died()
                self._buffer += chunk
                if len(self._buffer) > 64 * 1024 * 1024:
                    self.close()
                    raise LearnerCrashed("your code's answer was larger than 64 MB")

    def _died(self) -> dict[str, Any]:
        proc = self._proc
        code = proc.wait(timeout=5) if proc is not None else None
        self.close()
        self.restarts += 1
        raise LearnerCrashed(_describe_exit(code))


def _is_error(info: Any) -> bool:
    """Does ``info`` describe an exception the way the worker does (see describe_exception)?"""
    return (
        isinstance(info, dict)
        and all(isinstance(info.get(k), str) for k in ("type", "message", "where"))
        and isinstance(info.get("mro"), list)
        and all(isinstance(k, str) for k in info["mro"])
    )


def _are_load_problems(value: Any) -> TypeGuard[list[dict[str, Any]]]:
    """Is ``value`` a list of load problems the way the worker reports them?"""
    return isinstance(value, list) and all(
        isinstance(p, dict)
        and type(p.get("cell")) is int
        and isinstance(p.get("label"), str)
        and _is_error(p.get("error"))
        for p in value
    )


def _left_out_problem(cell: int, label: str, exc: LearnerError) -> dict[str, Any]:
    """The load problem of a cell left out for hanging or ending the worker (``exc``)."""
    kind = "Timeout" if isinstance(exc, LearnerTimeout) else "ProcessEnded"
    return {
        "cell": cell,
        "label": label,
        "left_out": True,
        "error": {
            "type": kind,
            "mro": [kind],
            "where": "",
            "message": f"{exc}; this cell was left out",
        },
    }


def _parse(line: bytes) -> dict[str, Any] | None:
    """A reply line as a JSON object, or None for anything else (a stray or broken line)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        why = {
            "SIGXCPU": "it used up its CPU time",
            "SIGSEGV": "it crashed (segmentation fault)",
            "SIGKILL": "it was killed (out of memory?)",
        }.get(name, f"signal {name}")
        return f"your code ended the grading process: {why}"
    return f"your code ended the grading process (exit code {code}; os._exit?)"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
