"""Start each hidden-suite run from a pristine process that has pytest imported already.

A hidden suite runs as ``python -I -B -m pytest ...`` in a process of its own (see
``academy.grading.suite_runner``). Most of that process's CPU is start-up: importing pytest,
its built-in plugins and the grading plugin, then a garbage collector that walks all of
them. When many notebooks are graded in one process (``nbgrader autograde``, a grading
service worker, mutation testing), a fork server pays that once:

* ``python -I -B -m academy.grading.forkserver`` imports pytest, the grading plugin and,
  when installed, hypothesis (two suites draw examples with it), freezes what it imported
  out of the collector's sight (``gc.freeze``) and waits;
* for each run it forks a child that becomes the suite process: a session of its own, the
  run's folder as working directory, the run's environment, its log as stdout and stderr;
  then ``pytest.main`` with the same arguments as the command line.

Every run still gets a fresh process: each child is forked from the server, which never
runs a test, loads a suite or sees a learner's code, so nothing passes from one student's
run to the next. The learner's code still runs in a sandboxed worker that the suite
process starts (``academy.bridge``); only the trusted pytest process is forked. Measured
here: 0.26 s of CPU a run against 0.67 s for a fresh interpreter (docs/service.md).

The server ends when its stdin closes, which happens when the process that started it ends,
however it ends; it kills the runs it still has. A run the server could not finish (it
died) is killed and run again as a plain subprocess by the caller.

Protocol: one JSON object per line. Requests on the server's stdin:
``{"id": N, "args": [...], "cwd": DIR, "log": FILE, "env": {...}}``; replies on its stdout:
``{"id": N, "pid": PID}`` once the child runs, ``{"id": N, "status": CODE}`` when it ended
(``CODE`` as ``Popen.returncode``: negative for a signal), or ``{"id": N, "error": TEXT}``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from academy.errors import AcademyError

__all__ = ["ForkServerGone", "SuiteForkServer", "shared_fork_server"]

START_SECONDS = 60.0  # the server must say "ready" within this (it imports pytest)
PRELOAD = ("pytest", "academy.grading.plugin")
OPTIONAL_PRELOAD = ("hypothesis",)  # modules 3 and 5's suites use it: 0.2 s an import


class ForkServerGone(AcademyError, RuntimeError):
    """The fork server ended before it reported how a run ended (the caller then runs the
    suite in a new interpreter)."""


@dataclass
class _Run:
    done: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    status: int | None = None
    error: str = ""


class SuiteForkServer:
    """The grading process's side: start the server, run suites through it, stop it."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = dict(env)
        self._lock = threading.Lock()
        self._runs: dict[int, _Run] = {}
        self._next = 0
        self._ready = threading.Event()
        self._home = tempfile.mkdtemp(prefix="f0-forkserver-")
        self._env["HOME"] = self._home
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-m", "academy.grading.forkserver"],
            cwd=self._home,
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="f0-forkserver", daemon=True)
        self._reader.start()
        if not self._ready.wait(START_SECONDS) or not self.alive:
            self.close()
            raise ForkServerGone("the suite fork server did not start")

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None and self._reader.is_alive()

    def run(self, args: list[str], cwd: str, log: str, env: dict[str, str], timeout: float) -> int:
        """Run ``pytest args`` in a fresh child; its exit code, ``-SIGKILL`` when it was killed
        after ``timeout`` seconds. Raises ``ForkServerGone`` (after killing the child) if the
        server ended first."""
        with self._lock:
            self._next += 1
            number = self._next
            run = self._runs[number] = _Run()
            request = {"id": number, "args": args, "cwd": cwd, "log": log, "env": env}
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(json.dumps(request).encode() + b"\n")
                self._proc.stdin.flush()
            except OSError as exc:
                self._runs.pop(number, None)
                raise ForkServerGone(f"the suite fork server is gone: {exc}") from exc
        try:
            if not run.done.wait(timeout):
                _kill_group(run.pid)
                run.done.wait(10.0)
                if run.status is None and run.pid is not None:
                    return -signal.SIGKILL  # killed; the server did not say so in time
            if run.error:
                raise ForkServerGone(run.error)
            if run.status is None:  # the server ended while the run was going
                _kill_group(run.pid)
                raise ForkServerGone("the suite fork server ended during a run")
            return run.status
        finally:
            with self._lock:
                self._runs.pop(number, None)

    def close(self) -> None:
        """Stop the server (it kills the runs it still has)."""
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._home, ignore_errors=True)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("ready"):
                self._ready.set()
                continue
            with self._lock:
                run = self._runs.get(message.get("id"))
            if run is None:
                continue
            if "pid" in message:
                run.pid = int(message["pid"])
            elif "status" in message:
                run.status = int(message["status"])
                run.done.set()
            elif "error" in message:
                run.error = str(message["error"])
                run.done.set()
        self._ready.set()  # ended: wake a start-up wait and every run still waiting
        with self._lock:
            for run in self._runs.values():
                run.done.set()


def _kill_group(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_shared: SuiteForkServer | None = None
_shared_lock = threading.Lock()


def shared_fork_server(env: dict[str, str]) -> SuiteForkServer:
    """This process's fork server, started on first use and again if it ended."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive:
            if _shared is not None:
                _shared.close()
            _shared = SuiteForkServer(env)
        return _shared


# --------------------------------------------------------------------------- the server
def _preload() -> None:
    import gc
    import importlib

    from _pytest.config import default_plugins

    for name in PRELOAD:
        importlib.import_module(name)
    for name in OPTIONAL_PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for name in default_plugins:  # what every pytest run imports while configuring
        importlib.import_module(f"_pytest.{name}")
    gc.collect()
    gc.freeze()  # children never walk (nor copy, by touching) what was imported here


def _child(request: dict[str, Any], keep: tuple[int, ...]) -> None:
    """In the forked child: become the suite process and never return."""
    code = 3
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        for fd in keep:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [sys.argv[0]]
        import pytest

        code = int(pytest.main(list(request["args"])))
    except BaseException:  # noqa: BLE001 - say why in the log, then exit
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _status(wait_status: int) -> int:
    return -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)


def main() -> None:
    import selectors

    reply_fd = os.dup(1)  # replies go here; stray prints of imports go nowhere
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    _preload()

    def reply(message: dict[str, Any]) -> None:
        os.write(reply_fd, json.dumps(message).encode() + b"\n")

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    children: dict[int, int] = {}  # pid -> request id
    pending = b""
    reply({"ready": True})
    try:
        while True:
            for key, _ in selector.select():
                if key.fd == wake_r:
                    os.read(wake_r, 4096)
                    continue
                data = os.read(0, 65536)
                if not data:
                    return  # the grading process ended: so do its runs (finally)
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    request = json.loads(line)
                    sys.stdout.flush()
                    try:
                        pid = os.fork()
                    except OSError as exc:
                        reply({"id": request["id"], "error": f"could not fork: {exc}"})
                        continue
                    if pid == 0:
                        _child(request, (reply_fd, wake_r, wake_w, selector.fileno()))
                    children[pid] = request["id"]
                    reply({"id": request["id"], "pid": pid})
            while children:
                try:
                    pid, wait_status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                number = children.pop(pid, None)
                if number is not None:
                    reply({"id": number, "status": _status(wait_status)})
    finally:
        for pid in children:
            _kill_group(pid)


if __name__ == "__main__":
    main()
