"""Cap the processes of one learner's code, and its share of the CPU, with a control group.

``RLIMIT_NPROC`` does not hold for root (graders often run as root in a container), so a
fork bomb needs a *pids* control group: its ``pids.max`` counts every process and thread of
the learner's code, however it was started. The same group gets an equal *cpu* weight, so
the bomb's processes share one learner's slice of the machine and another learner graded in
parallel keeps its own.

Both cgroup layouts are handled: v1 (one folder per controller under ``/sys/fs/cgroup``) and
v2 (one unified tree). Where neither can be written (no privileges, macOS), the group is
inactive (``active`` is False) and the caller says that processes are not capped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

__all__ = ["LearnerCgroup"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "framework0-academy"


class LearnerCgroup:
    """A control group for one learner process tree: create, join (in the child), remove."""

    def __init__(self, max_processes: int, root: Path = CGROUP_ROOT) -> None:
        self.max_processes = max_processes
        self.name = f"learner-{uuid.uuid4().hex[:12]}"
        self.root = root
        self.folders: list[Path] = []  # one per hierarchy that holds the group

    @property
    def active(self) -> bool:
        """True when the process cap is really enforced."""
        return bool(self.folders)

    def create(self) -> bool:
        """Make the group; False (and nothing made) when this machine does not allow it."""
        if self.max_processes <= 0:
            return False
        try:
            if (self.root / "pids" / "cgroup.procs").exists():  # v1: a folder per controller
                self._make(self.root / "pids" / PARENT, {"pids.max": self.max_processes})
                cpu = self.root / "cpu"
                if (cpu / "cgroup.procs").exists():
                    self._make(cpu / PARENT, {})  # the default cpu.shares: an equal weight
            elif "pids" in _read(self.root / "cgroup.controllers").split():  # v2: one tree
                parent = self.root / PARENT
                _write(self.root / "cgroup.subtree_control", "+pids")
                parent.mkdir(exist_ok=True)
                _write(parent / "cgroup.subtree_control", "+pids")
                self._make(parent, {"pids.max": self.max_processes})
        except OSError:
            self.remove()
            return False
        return self.active

    def join(self) -> None:
        """Move the calling process into the group (run in the child, before ``exec``)."""
        self.join_folders(self.folders)

    @staticmethod
    def join_folders(folders: list[Path]) -> None:
        """Move the calling process into the group whose folders another process made and
        passed on (``academy.bridge.kernel_sandbox --cgroup FOLDER``)."""
        pid = str(os.getpid())
        for folder in folders:
            _write(folder / "cgroup.procs", pid)

    def kill(self) -> None:
        """Kill every process still in the group (daemons that escaped their session too)."""
        for _ in range(50):
            pids = [int(p) for p in _read(self._procs()).split()] if self.folders else []
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill what is left and delete the group's folders."""
        self.kill()
        for folder in reversed(self.folders):
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the last killed process is reaped
                    time.sleep(0.02)
        self.folders = []

    def _make(self, parent: Path, settings: dict[str, int]) -> None:
        parent.mkdir(exist_ok=True)
        folder = parent / self.name
        folder.mkdir()
        self.folders.append(folder)
        for name, value in settings.items():
            _write(folder / name, str(value))

    def _procs(self) -> Path:
        return self.folders[0] / "cgroup.procs"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)
