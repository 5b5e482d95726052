"""The reply pipe under attack: learner code writing forged lines on the worker's reply fd.

The worker's process is the learner's: a thread started by a notebook cell can write on every
descriptor the worker inherited, the reply pipe included (its number is in ``sys.argv``), and
can even read the id of the request being served from the worker's frames. Whatever it
writes, a call must end by its own deadline (fixed when the call is sent), and no line that
does not name the pending request may answer it.
"""

from __future__ import annotations

import time

import pytest

from academy.bridge.client import Learner, LearnerTimeout, Limits

pytestmark = pytest.mark.xdist_group("bridge_ids")

# A thread writing, in a tight loop: progress lines and replies without an id, with guessed
# ids (counters, strings, hex of the right length), and progress with the REAL id of the
# request being served (read from the worker's main frame).
NOISE = """
import json, os, sys, threading, time

REPLY_FD = int(sys.argv[2])

def current_id():
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        found = frame.f_locals.get("current")
        if isinstance(found, dict) and "id" in found:
            return found["id"]
        frame = frame.f_back
    return None

def forged(n):
    real = current_id()
    lines = [
        {"progress": 0},
        {"value": 42},
        {"raised": {"type": "X", "mro": ["X"], "message": "forged"}},
        {"id": n, "value": 42},
        {"id": str(n), "value": 42},
        {"id": None, "value": 42},
        {"id": format(n, "024x"), "value": 42},
        {"id": format(n, "024x"), "progress": 0},
        {"id": real, "progress": 0},
    ]
    return "".join(json.dumps(line) + "\\n" for line in lines) + '{"id": "half a li'

def noise():
    n = 0
    while True:
        n += 1
        try:
            os.write(REPLY_FD, forged(n).encode())
        except OSError:
            return
        time.sleep(0.0005)

threading.Thread(target=noise, daemon=True).start()

def answer(x):
    time.sleep(0.01)  # the forger gets the GIL in between
    return x * 7

def hang():
    while True:
        time.sleep(0.05)
"""

HANG_WHILE_LOADING = """
while True:
    time.sleep(0.05)
"""


def cells(*sources):
    return [{"index": i, "label": f"cell {i}", "source": s} for i, s in enumerate(sources)]


def test_forged_lines_neither_answer_a_call_nor_keep_it_alive():
    call_seconds = 2.0
    limits = Limits(call_seconds=call_seconds, load_seconds=10)
    with Learner(cells(NOISE), limits) as learner:
        assert [learner.answer(n) for n in range(20)] == [n * 7 for n in range(20)]
        assert learner.load_problems == []
        assert learner.stray_lines > 100, "the forger did not run: the test proves nothing"

        start = time.monotonic()
        with pytest.raises(LearnerTimeout):
            learner.hang()
        took = time.monotonic() - start
        # Cut off at its own deadline: the flood of (even correctly addressed) progress lines
        # did not restart it. Generous upper bound for a loaded 2-core machine.
        assert call_seconds <= took < 2 * call_seconds + 1, took

        # The next call gets a fresh worker (the forger starts again) and its true answer.
        assert learner.answer(6) == 42
        assert learner.restarts == 1


def test_forged_progress_cannot_extend_the_load_or_blame_another_cell():
    load_seconds = 2.0
    guessing = NOISE.replace('{"id": real, "progress": 0},', "")  # guessed ids only
    sources = cells(
        "def a():\n    return 1\n",
        guessing + HANG_WHILE_LOADING,  # starts the forger, then hangs while loading
        "def b():\n    return 2\n",
    )
    with Learner(sources, Limits(call_seconds=5, load_seconds=load_seconds)) as learner:
        start = time.monotonic()
        assert learner.a() == 1  # the first request loads the notebook
        took = time.monotonic() - start
        assert learner.b() == 2
        left_out = {p["cell"]: p["error"]["type"] for p in learner.load_problems}
        # Cell 0 was named by forged progress lines (guessed ids); only the true one counts.
        assert left_out == {1: "Timeout"}
        # One load cut at its fixed deadline, then one clean load without the hanging cell.
        assert load_seconds <= took < 2 * load_seconds + 3, took


def test_progress_forged_with_the_real_id_costs_its_author_and_stays_bounded():
    """Reading the id from the worker's frames, learner code can blame its own other cells
    (they are left out: its loss), but each load still ends at its fixed deadline and at
    most ``max_left_out`` cells are left out."""
    load_seconds = 1.0
    sources = cells(
        "def a():\n    return 1\n",
        NOISE + HANG_WHILE_LOADING,
        "def b():\n    return 2\n",
    )
    limits = Limits(call_seconds=5, load_seconds=load_seconds, max_left_out=2)
    with Learner(sources, limits) as learner:
        start = time.monotonic()
        assert learner.b() == 2
        took = time.monotonic() - start
        left_out = {p["cell"] for p in learner.load_problems if p.get("left_out")}
        assert 1 in left_out and len(left_out) <= limits.max_left_out
        assert took < (limits.max_left_out + 1) * (load_seconds + 1.5), took


def test_a_worker_that_answers_nothing_is_still_cut_at_the_deadline():
    """Progress for a call (not a load) is ignored even with the right id."""
    source = NOISE.replace("time.sleep(0.0005)", "time.sleep(0.2)")
    with Learner(cells(source), Limits(call_seconds=1, load_seconds=10)) as learner:
        assert learner.answer(1) == 7
        start = time.monotonic()
        with pytest.raises(LearnerTimeout):
            learner.hang()
        assert time.monotonic() - start < 3
