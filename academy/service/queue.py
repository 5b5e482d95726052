"""A fair queue of checks: round-robin between learners, so one learner's burst never starves
the others, and a per-learner rate limit (a sliding minute)."""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["FairQueue", "RateLimiter"]

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Per-learner FIFO queues, served least-recently-served learner first.

    A learner who has never been served, or was served longest ago, goes next: with learner A's
    five checks waiting and learner B's one arriving afterwards, B's is the next one taken.
    """

    def __init__(self) -> None:
        self._queues: dict[str, deque[T]] = {}
        self._served: dict[str, int] = {}  # learner -> tick of their last service (higher: later)
        self._ticks = itertools.count(1)

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def waiting(self, learner: str) -> int:
        return len(self._queues.get(learner, ()))

    def push(self, learner: str, item: T) -> None:
        self._queues.setdefault(learner, deque()).append(item)

    def remove(self, learner: str, item: T) -> bool:
        queue = self._queues.get(learner)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        return True

    def _next_learner(self) -> str | None:
        waiting = [
            (self._served.get(lr, 0), i, lr) for i, (lr, q) in enumerate(self._queues.items()) if q
        ]
        return min(waiting)[2] if waiting else None

    def pop(self) -> T | None:
        learner = self._next_learner()
        if learner is None:
            return None
        item = self._queues[learner].popleft()
        if not self._queues[learner]:
            del self._queues[learner]
        self._served[learner] = next(self._ticks)
        return item

    def order(self) -> list[T]:
        """Every waiting item, in the order ``pop`` will hand them out."""
        heap = [(self._served.get(lr, 0), i, lr) for i, (lr, q) in enumerate(self._queues.items())]
        heap = [h for h in heap if self._queues[h[2]]]
        heapq.heapify(heap)
        taken = {lr: 0 for lr in self._queues}
        tick = 10**18  # after every real tick, in the same order as pop's
        out: list[T] = []
        while heap:
            _, i, learner = heapq.heappop(heap)
            queue = self._queues[learner]
            out.append(queue[taken[learner]])
            taken[learner] += 1
            if taken[learner] < len(queue):
                tick += 1
                heapq.heappush(heap, (tick, i, learner))
        return out

    def position(self, item: T) -> int | None:
        """1 for the next item to run; None when ``item`` is not waiting."""
        for number, other in enumerate(self.order(), 1):
            if other is item:
                return number
        return None


class RateLimiter:
    """At most ``per_minute`` events per learner in any 60 seconds."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def allow(self, learner: str) -> float:
        """0 when allowed (and counted), else the seconds until the next event is allowed."""
        now = self.clock()
        events = self._events.setdefault(learner, deque())
        while events and events[0] <= now - 60.0:
            events.popleft()
        if self.per_minute > 0 and len(events) >= self.per_minute:
            return max(0.1, events[0] + 60.0 - now)
        events.append(now)
        return 0.0
