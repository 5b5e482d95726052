"""academy.env: the environment and process rules of the tools the platform starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from academy.env import tool_env

CHILD = (
    "import academy.env, time; academy.env.die_with_parent(); "
    "print('ready', flush=True); time.sleep(120)"
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
@pytest.mark.parametrize("protected", [True, False])
def test_a_grading_process_ends_with_the_process_that_started_it(protected):
    """The child runs in a session of its own (as nbgrader does under a Dask worker), so a
    kill of the parent's process group misses it: only die_with_parent ends it."""
    code = CHILD if protected else CHILD.replace("academy.env.die_with_parent(); ", "")
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; "
            f"p = subprocess.Popen([sys.executable, '-c', {code!r}], start_new_session=True, "
            "stdout=subprocess.PIPE, text=True); "
            "assert p.stdout.readline() == 'ready\\n'; print(p.pid, flush=True); "
            "import time; time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=tool_env(),
        start_new_session=True,
    )
    child = int(parent.stdout.readline())
    try:
        assert _alive(child)
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + (10 if protected else 3)
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(child) is not protected
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
