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


def test_the_site_hook_skips_rfc3987_syntax_in_every_process(tmp_path):
    """`make env` installs academy.env's .pth hook: a process that imports jsonschema (stock
    nbgrader, a Jupyter server) without importing academy no longer builds the grammar."""
    import sysconfig
    from pathlib import Path

    from academy.env import SITE_HOOK, install_site_hook

    written = install_site_hook(tmp_path)
    assert written == tmp_path / SITE_HOOK and written.read_text().startswith("import sys;")
    installed = Path(sysconfig.get_paths()["purelib"]) / SITE_HOOK
    assert installed.is_file(), f"{installed} is missing: make env installs it"
    probe = "import jsonschema, sys; print('academy' in sys.modules, sys.modules['rfc3987_syntax'])"
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "None"], out
