"""Start an IPython kernel inside the sandbox: the kernel argv of sandboxed grading.

``ExecuteWithinLimits`` gives nbclient a kernel spec whose command is
``python -m academy.bridge.kernel_sandbox [--cgroup DIR]... [--without-debugger] -f
{connection_file} [kernel args]``; the launcher first moves itself into the given cgroups (the
process cap). ``--without-debugger`` starts ``academy.bridge.grading_kernel`` instead of
``ipykernel_launcher``: the same kernel, without debugpy. The kernel
then sees its notebook's folder (read-write), the private folder holding its connection file
and ``ipc`` sockets, and the Python environment; nothing else of the machine. Signals cannot
reach a kernel in its own session, so the spec asks for ``interrupt_mode: message``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from academy.bridge.cgroup import LearnerCgroup
from academy.bridge.sandbox import Sandbox


def command(argv: list[str], cwd: str, mode: str = "require", debugger: bool = True) -> list[str]:
    """The bwrap command line that runs ipykernel with ``argv`` (``-f FILE`` first)."""
    if len(argv) < 2 or argv[0] != "-f":
        raise SystemExit("usage: python -m academy.bridge.kernel_sandbox -f CONNECTION_FILE ...")
    connection_dir = str(Path(argv[1]).resolve().parent)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/tmp",
        "IPYTHONDIR": "/tmp/.ipython",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    launcher = "ipykernel_launcher" if debugger else "academy.bridge.grading_kernel"
    kernel = [sys.executable, "-m", launcher, *argv]
    return Sandbox(mode).wrap(kernel, cwd, env, shared=(connection_dir,))


def main() -> None:
    argv = sys.argv[1:]
    groups = []
    while argv[:1] == ["--cgroup"]:  # join the learner's pids cgroup before anything starts
        groups.append(Path(argv[1]))
        argv = argv[2:]
    debugger = argv[:1] != ["--without-debugger"]
    argv = argv[0 if debugger else 1 :]
    LearnerCgroup.join_folders(groups)
    args = command(argv, os.getcwd(), debugger=debugger)
    # The kernel's own banner ("To connect another client...") is not cell output.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
