"""The kernel manager and client grading uses: jupyter_client's, without its idle waits.

Starting and stopping a kernel through jupyter_client costs each student 0.3 to 0.5 s of
wall-clock time in which neither the grader nor the kernel does anything:

* ``wait_for_ready`` checks that IOPub is connected by waiting up to 0.2 s for a message
  after the ``kernel_info`` reply, often in vain when the kernel published before the
  subscription arrived, and ends by reading IOPub until it has been silent for 0.2 s, to drop
  the start-up messages. ``GradingKernelClient`` instead reads IOPub until the kernel says it
  is idle after a ``kernel_info`` request (asking again the moment IOPub's welcome message
  shows the subscription has arrived): IOPub is ordered, so every start-up message before it
  is read, and none is left that nbclient would mistake for a cell's output (nbclient ignores
  messages whose parent is not the cell's request anyway).
* Killing a kernel (``shutdown_kernel = "immediate"``, as grading configures it) then polls
  whether the process is gone every 0.1 s. ``GradingKernelManager`` polls every 0.01 s.

Everything else is jupyter_client's: the same messages, the same time limits, one fresh
kernel per notebook. ``ExecuteWithinLimits`` uses these classes.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Float, Type

__all__ = ["GradingKernelClient", "GradingKernelManager"]

# How long one read of IOPub waits for the kernel's idle status before kernel_info is asked
# again (jupyter_client's own check of the IOPub connection waits as long).
IOPUB_SECONDS = 0.2


class GradingKernelClient(AsyncKernelClient):
    """A kernel client whose ``wait_for_ready`` returns as soon as the kernel is ready."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:  # type: ignore[override]
        """Ask for ``kernel_info`` until the reply and its IOPub idle status both arrive.

        Raises ``RuntimeError`` (as jupyter_client does) when the kernel dies first or does
        not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                if await self._idle_after(reply["parent_header"].get("msg_id", request)):
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    async def _idle_after(self, request: str) -> bool:
        """Read IOPub up to the idle status of ``request``; False when IOPub falls silent
        first (it was not connected yet when the kernel published that status).

        A kernel that sends IOPub's welcome message (ipykernel does, when a subscription
        arrives) says so the moment IOPub connects: then ``kernel_info`` is asked once more,
        whose idle status is sure to arrive, instead of waiting out the silence.
        """
        requests = {request}
        while True:
            try:
                msg: dict[str, Any] = await self.iopub_channel.get_msg(timeout=IOPUB_SECONDS)
            except Empty:
                return False
            if msg["msg_type"] == "iopub_welcome":
                requests.add(self.kernel_info())
            elif (
                msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
                and msg["parent_header"].get("msg_id") in requests
            ):
                return True


class GradingKernelManager(AsyncKernelManager):
    """jupyter_client's async kernel manager with ``GradingKernelClient`` as its client and
    a finer poll for the end of a killed kernel."""

    client_class = DottedObjectName(
        "academy.grading.kernel.GradingKernelClient",
        help="The client class, by name (jupyter_client reads client_factory).",
    ).tag(config=True)
    client_factory = Type(
        GradingKernelClient,
        klass=AsyncKernelClient,
        help="The client nbclient gets from client(): returns from wait_for_ready as soon as "
        "the kernel is ready.",
    ).tag(config=True)
    exit_poll_seconds = Float(
        0.01,
        help="How often to check whether a stopped kernel's process has ended, in seconds "
        "(jupyter_client checks every 0.1 s).",
    ).tag(config=True)

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        """Wait for the kernel's process to end (jupyter_client's, polled more often)."""
        await super()._async_wait(pollinterval=min(pollinterval, self.exit_poll_seconds))
