"""``f0 watch``: re-check a notebook whenever it is saved.

Polling the file's modification time and size works the same on every system and inside
containers; a debounce waits until the file has stopped changing (Jupyter writes a notebook
in more than one step), so a half-written save is never graded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["NotebookWatcher"]

Signature = tuple[int, int] | None


class NotebookWatcher:
    """Call ``on_change`` once after each burst of writes to ``path``."""

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], object],
        interval: float = 0.5,
        debounce: float = 0.8,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self.on_change = on_change
        self.interval = interval
        self.debounce = debounce
        self.clock = clock
        self.sleep = sleep
        self.seen = self.signature()  # the baseline: a save from now on counts

    def signature(self) -> Signature:
        try:
            stat = self.path.stat()
        except OSError:
            return None  # mid-save (some editors delete and recreate) or gone
        return (stat.st_mtime_ns, stat.st_size)

    def run(self, max_checks: int | None = None, max_polls: int | None = None) -> int:
        """Watch until ``max_checks`` checks ran or ``max_polls`` polls passed (None: forever).

        Returns the number of checks run.
        """
        checks = polls = 0
        changed_at: float | None = None
        while (max_checks is None or checks < max_checks) and (
            max_polls is None or polls < max_polls
        ):
            self.sleep(self.interval)
            polls += 1
            current = self.signature()
            if current != self.seen:
                self.seen, changed_at = current, self.clock()
            elif (
                changed_at is not None
                and current is not None
                and self.clock() - changed_at >= self.debounce
            ):
                changed_at = None
                self.on_change()
                checks += 1
        return checks
