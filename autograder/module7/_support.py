"""Module 7's hidden suite (profiler, caching, consistent hashing): what several exercises
share. Instructor-only: never released to learners.

The suite is this folder: one file per exercise, in the notebook's order
(``test_7_1_profiler.py`` to ``test_7_6_replication.py``), each with the helpers only it uses,
and this module, which the grader loads as ``_support`` before them (``academy.grading.plugin``).

Every case checks one sentence of the notebook's exercise text and says, in its message,
which behaviour is wrong. The learner's code is reached through the ``learner`` fixture
(``academy.bridge``); every comparison happens here, on plain data.

Performance and thread safety are graded as behaviour that holds on any machine: a ratio
between two cache sizes measured in the same run, and counts that must add up after threads
ran, never a wall-clock threshold.

The learner's code shares its process with any grader code run there and can skip or fake
it, so no verdict rests on such code alone: timings are taken here (time.perf_counter around
bridge calls that each do hundreds of operations, whose results are checked), what threads
or grader lambdas changed is read back here through the learner's own objects, and helpers
that only read (`in`, the profiles, the cluster's layout) call the learner's methods over the
bridge instead of running in the worker.
"""

from __future__ import annotations

from academy.bridge.client import Remote, expr
from academy.grading.cases import contains as learner_contains


def fake_clock(learner, values):
    """A clock in the worker that returns ``values`` one after the other."""
    return learner.make(expr(f"iter({[float(v) for v in values]!r}).__next__"))


def contains(learner, container, key):
    """``key in container``, answered by the learner's ``__contains__`` over the bridge."""
    return learner_contains(learner, container, key)


def history(cctx):
    return [(e["key"], e["after"], e["step"]) for e in cctx.get_history()]


def positions(learner, ring):
    """The ring's (position, node) pairs, sorted, read over the bridge."""
    table = ring.ring.value()
    pairs = learner.builtin("list", table.items()) if isinstance(table, Remote) else table.items()
    return sorted(tuple(p) for p in pairs)


NODES5 = [f"node-{i}" for i in range(5)]
