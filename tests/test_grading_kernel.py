"""The grading kernel manager and client (academy/grading/kernel.py): jupyter_client's, with
its idle waits cut. A kernel is ready when its kernel_info reply and the idle status after it
have both arrived (no trailing silence is waited out), cells then run with exactly their own
output, a kernel that dies before it is ready is reported, and a killed kernel is waited for
with a fine poll. Real kernels, started without the sandbox (the sandbox is tested with the
grading steps).
"""

from __future__ import annotations

import asyncio
import sys
from queue import Empty

import pytest
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

from academy.grading.kernel import GradingKernelClient, GradingKernelManager
from academy.grading.steps import ExecuteWithinLimits

KERNEL = [sys.executable, "-m", "academy.bridge.grading_kernel", "-f", "{connection_file}"]


def manager(argv: list[str] = KERNEL) -> GradingKernelManager:
    km = GradingKernelManager()
    km._kernel_spec = KernelSpec(argv=argv, display_name="test", language="python")
    return km


def test_ready_ends_on_the_idle_status_not_on_silence(tmp_path):
    """wait_for_ready returns on a message (the idle status after kernel_info), never after
    an IOPub read that waited out a silence; the kernel then runs a request normally."""

    async def scenario() -> tuple[list[str], dict]:
        km = manager()
        await km.start_kernel(cwd=str(tmp_path))
        kc = km.client()
        assert isinstance(kc, GradingKernelClient)
        kc.start_channels()
        reads: list[str] = []
        get = kc.iopub_channel.get_msg

        async def recorded(timeout=None):
            try:
                msg = await get(timeout=timeout)
            except Empty:
                reads.append("silence")
                raise
            reads.append(f"{msg['msg_type']}:{msg['content'].get('execution_state', '')}")
            return msg

        kc.iopub_channel.get_msg = recorded
        try:
            await kc.wait_for_ready(timeout=60)
            kc.iopub_channel.get_msg = get
            reply = await kc.execute_interactive("print(6 * 7)", timeout=30)
            return reads, reply
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    reads, reply = asyncio.run(scenario())
    assert reads and reads[-1] == "status:idle", reads
    assert reply["content"]["status"] == "ok"


def test_a_notebook_runs_with_each_cell_getting_its_own_output(tmp_path):
    """Through nbclient, as grading runs it: no start-up message lands in a cell."""
    nb = new_notebook(
        cells=[
            new_code_cell("print('first')"),
            new_code_cell("x = 2\nx * 21"),
            new_code_cell("import sys; print('err', file=sys.stderr)"),
        ]
    )
    km = manager()
    NotebookClient(nb, km=km, timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [cell.outputs for cell in nb.cells]
    assert [o.get("text") for o in outputs[0]] == ["first\n"]
    assert [o.get("data", {}).get("text/plain") for o in outputs[1]] == ["42"]
    assert [(o.get("name"), o.get("text")) for o in outputs[2]] == [("stderr", "err\n")]


def test_a_kernel_that_dies_before_it_is_ready_is_reported(tmp_path):
    async def scenario() -> None:
        km = manager([sys.executable, "-c", "import sys; sys.exit(3)", "{connection_file}"])
        await km.start_kernel(cwd=str(tmp_path))
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=30)
        finally:
            kc.stop_channels()
            await km.cleanup_resources()

    with pytest.raises(RuntimeError, match="Kernel died before replying to kernel_info"):
        asyncio.run(scenario())


def test_a_killed_kernel_is_waited_for_with_the_fine_poll(tmp_path, monkeypatch):
    """Every pause while waiting for a killed kernel's process to end is at most
    exit_poll_seconds (jupyter_client's own wait pauses 0.1 s), and the kernel is gone."""
    pauses: list[float] = []

    async def scenario() -> bool:
        km = manager()
        await km.start_kernel(cwd=str(tmp_path))
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        kc.stop_channels()
        sleep = asyncio.sleep

        async def recorded(delay, *args, **kwargs):
            pauses.append(delay)
            return await sleep(delay, *args, **kwargs)

        monkeypatch.setattr(asyncio, "sleep", recorded)
        await km.shutdown_kernel(now=True)
        monkeypatch.setattr(asyncio, "sleep", sleep)
        return await km.is_alive()

    assert asyncio.run(scenario()) is False
    assert pauses, "the kill did not wait for the process at all"
    assert max(pauses) <= GradingKernelManager().exit_poll_seconds


@pytest.mark.parametrize(
    ("trim", "expected"),
    [(None, GradingKernelManager), (True, GradingKernelManager), (False, AsyncKernelManager)],
)
def test_grading_runs_kernels_with_the_configured_manager(trim, expected):
    """trim_kernel_waits (default True) chooses the manager, even though nbgrader's Execute
    fixes kernel_manager_class above any configuration."""
    config = Config()
    if trim is not None:
        config.ExecuteWithinLimits.trim_kernel_waits = trim
    step = ExecuteWithinLimits(config=config, sandbox="off")
    step._private_dirs, step._cgroups, step.nb = [], [], new_notebook()
    km = step.create_kernel_manager()
    assert type(km) is expected


def test_the_course_configures_immediate_kernel_shutdown():
    """The fine poll is on the kill path: grading kills kernels rather than asking them to
    stop (a learner's exit handlers never run)."""
    from course_tools import ROOT
    from traitlets.config import PyFileConfigLoader

    config = PyFileConfigLoader("jupyter_config.py", path=str(ROOT)).load_config()
    assert config.ExecuteWithinLimits.shutdown_kernel == "immediate"
