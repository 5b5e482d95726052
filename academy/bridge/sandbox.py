"""Run learner code where it can see only what it needs: bubblewrap, when it exists.

The learner's worker process gets a private view of the file system (the Python install,
the course's installed packages and its own empty folder; not the course source, the hidden
suites, the gradebook or other students' work), no network, its own process namespace (so a
daemon it leaves behind dies with it) and no capabilities. Resource limits (memory, CPU,
file size) are applied separately, with ``setrlimit``.

Where bubblewrap is missing (a learner's laptop, macOS), ``mode="auto"`` runs the worker
unsandboxed and says so; ``mode="require"`` refuses instead, for instructors who grade
untrusted work.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from academy.errors import SandboxUnavailable

__all__ = ["MODES", "Sandbox", "SandboxUnavailable"]

MODES = ("auto", "require", "off")
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/etc/alternatives", "/etc/fonts")
PACKAGES = ("academy", "framework0")  # what the worker imports, wherever it is installed


@dataclass(frozen=True)
class Sandbox:
    """How to wrap a command so it runs sandboxed (or, by choice or necessity, not)."""

    mode: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"sandbox mode must be one of {MODES}, got {self.mode!r}")

    @property
    def bwrap(self) -> str | None:
        if self.mode == "off" or not sys.platform.startswith("linux"):
            return None
        return shutil.which("bwrap")

    @property
    def active(self) -> bool:
        """True when commands will really run inside bubblewrap."""
        return self.bwrap is not None

    def check(self) -> None:
        if self.mode == "require" and not self.active:
            raise SandboxUnavailable(
                "grading requires the sandbox, but bubblewrap (`bwrap`) is not available on "
                "this machine: install the Debian package `bubblewrap`, or set the sandbox "
                "mode to 'auto' to grade unsandboxed"
            )

    def wrap(
        self, command: list[str], workdir: str, env: dict[str, str], shared: tuple[str, ...] = ()
    ) -> list[str]:
        """``command`` as run inside the sandbox, seeing ``workdir`` (read-write) and no more.

        ``shared`` folders are also bound read-write, at the same path (a kernel's private
        connection folder, where its sockets live).
        """
        self.check()
        bwrap = self.bwrap
        if bwrap is None:
            return command
        args = [
            bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
        ]
        for path in _readable_paths():
            args += ["--ro-bind", path, path]
        for path in (*shared, workdir):
            args += ["--bind", path, path]
        args += ["--chdir", workdir]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--", *command]


def _readable_paths() -> list[str]:
    """System folders, the Python install, the environment, and our packages' folders."""
    paths = [p for p in SYSTEM_DIRS if os.path.isdir(p)]
    paths += [sys.base_prefix, sys.prefix]
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            paths += [str(Path(p).resolve()) for p in spec.submodule_search_locations]
    executable = Path(sys.executable).resolve()
    paths.append(str(executable.parent))
    unique: list[str] = []
    for path in sorted(set(paths), key=len):  # a parent already bound covers its children
        if not any(path == u or path.startswith(u.rstrip("/") + "/") for u in unique):
            unique.append(path)
    return unique
