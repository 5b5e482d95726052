"""Hidden suite for module 3 (Dirty keys and delta persistence). Instructor-only: never released.

Every case checks one sentence of the notebook's exercise text and says, in its message,
which behaviour is wrong. The learner's code is reached through the ``learner`` fixture
(``academy.bridge``); every comparison happens here, on plain data. Folders for the
learner's files are made here with ``tempfile.mkdtemp`` and read back here; time is a fake
clock built in the worker, so nothing sleeps.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from academy.bridge.client import LearnerError, LearnerException, LearnerTimeout, Remote, expr
from academy.grading.cases import CaseFailed, case, check, confirm, is_a, make_context, raises


# --------------------------------------------------------------------------- helpers
def shared_folder(learner) -> Path:
    """A new, empty folder that this process and the learner's worker both see.

    The worker may run in a sandbox that sees only its own working folder (bound at the same
    path), so the folder is made inside it.
    """
    learner.has("DeltaPersister")  # starts the worker, and with it its working folder
    return Path(tempfile.mkdtemp(prefix="module3-", dir=learner.workdir))


@pytest.fixture
def folder(learner) -> Iterator[Path]:
    path = shared_folder(learner)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def read_json(path: Path, name: str) -> Any:
    file = path / name
    if not file.is_file():
        raise CaseFailed(f"there is no file {name}; the folder holds {listing(path)}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CaseFailed(f"{name} does not hold valid JSON ({exc})") from None


def path_object(path: Path) -> expr:
    return expr(f"__import__('pathlib').Path({str(path)!r})")


# --------------------------------------------------------------------------- exercise 3.1
@case(
    "3.1",
    0.5,
    "DeltaPersister(storage_dir) must create a missing folder (with its parents) and "
    "accept an existing folder, given as a str or a pathlib.Path",
    rules=("3.1-b", "3.1-c", "3.1-d"),
)
def test_3_1_folder(learner, folder):
    nested = folder / "missing" / "state"
    learner.DeltaPersister(str(nested))
    check(nested.is_dir(), "a missing folder (and its missing parent) was not created")
    as_path = folder / "as_path"
    learner.DeltaPersister(path_object(as_path))
    check(as_path.is_dir(), "a folder given as a pathlib.Path was not created")
    existing = folder / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("not ours")
    persister = learner.DeltaPersister(str(existing))
    snapshot_id = persister.save_snapshot(make_context(learner, {"a": 1}))
    check(snapshot_id == "001", f"in an existing folder save_snapshot() returned {snapshot_id!r}")


@case(
    "3.1",
    0.75,
    "save_snapshot() must write the whole state to snapshot_NNN.json (NNN = 001, 002, ...), "
    "return the id 'NNN' and clear the context's dirty keys",
    rules=("3.1-a", "3.1-e", "3.1-h", "3.1-j", "3.1-k", "3.1-m"),
)
def test_3_1_snapshot(learner, folder):
    state = {"app.name": "Shöp ✓", "orders": [1, {"id": 2}], "flag": None}
    ctx = make_context(learner, state)
    persister = learner.DeltaPersister(str(folder))
    first = persister.save_snapshot(ctx)
    check(first == "001", f"the first save_snapshot() returned {first!r}")
    check(listing(folder) == ["snapshot_001.json"], f"the folder holds {listing(folder)}")
    saved = read_json(folder, "snapshot_001.json")
    check(saved == state, f"snapshot_001.json holds {saved!r}, but the state was {state!r}")
    dirty = ctx.pop_dirty_keys()
    check(dirty == [], f"after save_snapshot() the context still had dirty keys {dirty!r}")
    ctx.set("app.mode", "sale", who="grader")
    second = persister.save_snapshot(ctx)
    check(second == "002", f"the second save_snapshot() returned {second!r}")
    saved = read_json(folder, "snapshot_002.json")
    check(
        saved == {**state, "app.mode": "sale"},
        f"snapshot_002.json holds {saved!r}, not the whole state",
    )
    check(
        listing(folder) == ["snapshot_001.json", "snapshot_002.json"],
        f"after two snapshots the folder holds {listing(folder)}",
    )


@case(
    "3.1",
    0.75,
    "save_delta() must write exactly the dirty keys with their current values to "
    "delta_NNN_MMM.json, return the id 'NNN_MMM' and clear the dirty keys",
    rules=("3.1-a", "3.1-i", "3.1-j", "3.1-n"),
)
def test_3_1_delta(learner, folder):
    ctx = make_context(learner, {"a": 1, "b": 2, "z": "same"})
    persister = learner.DeltaPersister(str(folder))
    persister.save_snapshot(ctx)
    ctx.set("a", 10, who="grader")
    ctx.set("c", [3], who="grader")
    ctx.set("a", 11, who="grader")
    ctx.set("z", "same", who="grader")  # unchanged value: still dirty
    first = persister.save_delta(ctx)
    check(first == "001_001", f"the first delta after snapshot 001 returned {first!r}")
    saved = read_json(folder, "delta_001_001.json")
    expected = {"a": 11, "c": [3], "z": "same"}
    check(saved == expected, f"delta_001_001.json holds {saved!r}, expected {expected!r}")
    dirty = ctx.pop_dirty_keys()
    check(dirty == [], f"after save_delta() the context still had dirty keys {dirty!r}")
    ctx.set("b", {"x": True}, who="grader")
    second = persister.save_delta(ctx)
    check(second == "001_002", f"the second delta returned {second!r}")
    saved = read_json(folder, "delta_001_002.json")
    check(saved == {"b": {"x": True}}, f"delta_001_002.json holds {saved!r}")
    check(
        listing(folder) == ["delta_001_001.json", "delta_001_002.json", "snapshot_001.json"],
        f"the folder holds {listing(folder)}",
    )


@case(
    "3.1",
    0.5,
    "after a new snapshot, delta numbering must start again at 001 for that snapshot "
    "(delta_002_001 follows snapshot_002)",
    rules=("3.1-f", "3.1-m", "3.1-n"),
)
def test_3_1_numbering_resets(learner, folder):
    ctx = learner.Context()
    persister = learner.DeltaPersister(str(folder))
    persister.save_snapshot(ctx)
    ids = []
    for value in (1, 2):
        ctx.set("a", value, who="grader")
        ids.append(persister.save_delta(ctx))
    ids.append(persister.save_snapshot(ctx))
    for value in (3, 4):
        ctx.set("a", value, who="grader")
        ids.append(persister.save_delta(ctx))
    expected = ["001_001", "001_002", "002", "002_001", "002_002"]
    check(ids == expected, f"the ids returned were {ids!r}, expected {expected!r}")
    files = [
        "delta_001_001.json",
        "delta_001_002.json",
        "delta_002_001.json",
        "delta_002_002.json",
        "snapshot_001.json",
        "snapshot_002.json",
    ]
    check(listing(folder) == files, f"the folder holds {listing(folder)}")


@case(
    "3.1",
    0.5,
    "save_delta() with no dirty keys must write no file, return None and not use up a delta number",
    rules=("3.1-o",),
)
def test_3_1_empty_delta(learner, folder):
    ctx = make_context(learner, {"a": 1})
    persister = learner.DeltaPersister(str(folder))
    persister.save_snapshot(ctx)
    nothing = persister.save_delta(ctx)
    check(nothing is None, f"right after a snapshot save_delta() returned {nothing!r}")
    check(listing(folder) == ["snapshot_001.json"], f"the folder holds {listing(folder)}")
    ctx.set("a", 2, who="grader")
    first = persister.save_delta(ctx)
    check(first == "001_001", f"the first real delta returned {first!r}")
    again = persister.save_delta(ctx)
    check(again is None, f"right after a delta save_delta() returned {again!r}")
    ctx.set("b", 3, who="grader")
    second = persister.save_delta(ctx)
    check(second == "001_002", f"the next real delta returned {second!r}")
    check(
        listing(folder) == ["delta_001_001.json", "delta_001_002.json", "snapshot_001.json"],
        f"the folder holds {listing(folder)}",
    )


@case(
    "3.1",
    0.25,
    "save_delta() before this object saved any snapshot must raise RuntimeError",
    rules=("3.1-p",),
)
def test_3_1_delta_needs_snapshot(learner, folder):
    ctx = make_context(learner, {"a": 1})
    raises(
        lambda: learner.DeltaPersister(str(folder)).save_delta(ctx),
        "RuntimeError",
        "save_delta() on a new DeltaPersister",
    )
    learner.DeltaPersister(str(folder)).save_snapshot(ctx)
    ctx.set("a", 2, who="grader")
    raises(
        lambda: learner.DeltaPersister(str(folder)).save_delta(ctx),
        "RuntimeError",
        "save_delta() on a new DeltaPersister whose folder holds another object's snapshot",
    )


@case(
    "3.1",
    0.75,
    "load_full_state(id) must return a new Context holding that snapshot with its deltas "
    "applied in order, with no history and no dirty keys, read from the folder alone",
    critical=True,
    rules=("3.1-q", "3.1-r", "3.1-s", "3.1-u"),
)
def test_3_1_load(learner, folder):
    ctx = make_context(learner, {"app.name": "Shop", "orders.pending": 0, "tags": ["a"]})
    persister = learner.DeltaPersister(str(folder))
    persister.save_snapshot(ctx)
    ctx.set("orders.pending", 3, who="grader")
    persister.save_delta(ctx)
    ctx.set("orders.pending", 4, who="grader")
    ctx.set("app.mode", "sälé ✓", who="grader")
    persister.save_delta(ctx)
    chain_one = ctx.to_dict()
    persister.save_snapshot(ctx)
    ctx.set("tags", ["a", "b"], who="grader")
    ctx.set("orders.pending", 7, who="grader")
    persister.save_delta(ctx)
    chain_two = ctx.to_dict()
    files_before = {name: (folder / name).read_bytes() for name in listing(folder)}

    loaded = persister.load_full_state("002")
    check(is_a(learner, loaded, "Context"), f"load_full_state() returned {loaded!r}")
    data = loaded.to_dict()
    check(data == chain_two, f"load_full_state('002') gave {data!r}, expected {chain_two!r}")
    history = loaded.get_history()
    check(history == [], f"the loaded context has {len(history)} history entries")
    dirty = loaded.pop_dirty_keys()
    check(dirty == [], f"the loaded context has dirty keys {dirty!r}")

    again = persister.load_full_state("002")
    check(
        not learner.same(loaded, again),
        "two calls of load_full_state('002') returned the same Context object, not a new one",
    )
    loaded.set("tags", ["changed"], who="grader")
    reloaded = again.to_dict()
    check(
        reloaded == chain_two,
        f"changing one loaded context changed another loaded one: it became {reloaded!r}",
    )

    older = persister.load_full_state("001").to_dict()
    check(older == chain_one, f"load_full_state('001') gave {older!r}, expected {chain_one!r}")
    fresh = learner.DeltaPersister(str(folder)).load_full_state("002").to_dict()
    check(
        fresh == chain_two,
        f"a new DeltaPersister on the same folder loaded {fresh!r}, expected {chain_two!r}",
    )
    files_after = {name: (folder / name).read_bytes() for name in listing(folder)}
    check(files_after == files_before, "loading changed the files in the folder")


@case(
    "3.1",
    0.25,
    "load_full_state(id) must raise FileNotFoundError when there is no file "
    "snapshot_<id>.json, whatever other files the folder holds",
    rules=("3.1-t",),
)
def test_3_1_unknown_snapshot(learner, folder):
    persister = learner.DeltaPersister(str(folder))
    raises(lambda: persister.load_full_state("001"), "FileNotFoundError", "in an empty folder")
    ctx = make_context(learner, {"a": 1})
    persister.save_snapshot(ctx)
    persister.save_snapshot(ctx)
    raises(
        lambda: persister.load_full_state("007"),
        "FileNotFoundError",
        "for '007' when only snapshots 001 and 002 exist",
    )
    raises(
        lambda: persister.load_full_state("1"),
        "FileNotFoundError",
        "for '1' (there is a snapshot_001.json, but no snapshot_1.json)",
    )
    ctx.set("a", 2, who="grader")
    persister.save_delta(ctx)
    (folder / "snapshot_002.json").unlink()
    raises(
        lambda: persister.load_full_state("002"),
        "FileNotFoundError",
        "for '002' after snapshot_002.json was deleted (its delta file is still there)",
    )


def delta_loop(learner, ctx, persister, n: int) -> list[Any]:
    """``n`` rounds of two sets and a save_delta(), each a call of the learner's code.

    Called over the bridge one by one (no grader loop in the worker, which the learner's code
    could skip), within the time one call may take, as when the loop ran there.
    """
    limit = learner.limits.call_seconds
    deadline = time.perf_counter() + limit
    ids = []
    for i in range(1, n + 1):
        ctx.set("counter", i, who="grader")
        ctx.set(f"k{i % 3}", i, who="grader")
        ids.append(persister.save_delta(ctx))
        if time.perf_counter() > deadline:
            raise LearnerTimeout(
                f"your code did not finish within {limit:g} s ({i} of {n} rounds of "
                "set() and save_delta() were done)"
            )
    return ids


@case(
    "3.1",
    0.5,
    "with 1,000+ deltas, file names must be padded to at least 3 digits (delta_001_1000) "
    "and load_full_state() must apply deltas in numeric order, not text order",
    critical=True,
    rules=("3.1-g", "3.1-i", "3.1-r"),
)
def test_3_1_many_deltas(learner, folder):
    ctx = make_context(learner, {"counter": 0})
    persister = learner.DeltaPersister(str(folder))
    persister.save_snapshot(ctx)
    ids = delta_loop(learner, ctx, persister, 1001)
    check(
        isinstance(ids, list) and len(ids) == 1001,
        "1001 calls of save_delta() did not return 1001 ids",
    )
    check(
        [ids[0], ids[8], ids[9], ids[998], ids[999], ids[1000]]
        == ["001_001", "001_009", "001_010", "001_999", "001_1000", "001_1001"],
        f"deltas 1, 9, 10, 999, 1000 and 1001 returned "
        f"{[ids[i] for i in (0, 8, 9, 998, 999, 1000)]!r}",
    )
    check(
        (folder / "delta_001_1000.json").is_file() and (folder / "delta_001_999.json").is_file(),
        "the files delta_001_999.json and delta_001_1000.json were not both written",
    )
    data = persister.load_full_state("001").to_dict()
    expected = {"counter": 1001, "k0": 999, "k1": 1000, "k2": 1001}
    check(data == expected, f"after 1001 deltas load_full_state('001') gave {data!r}")


@case(
    "3.1",
    0.25,
    "a new DeltaPersister on a folder that already holds snapshots must continue after "
    "the highest snapshot number, never overwriting earlier files",
    critical=True,
    rules=("3.1-d", "3.1-g", "3.1-l"),
)
def test_3_1_numbering_continues(learner, folder):
    ctx = make_context(learner, {"run": 1})
    first = learner.DeltaPersister(str(folder))
    first.save_snapshot(ctx)
    first.save_snapshot(ctx)
    ctx.set("run", 1.5, who="grader")
    first.save_delta(ctx)
    before = {name: (folder / name).read_bytes() for name in listing(folder)}
    restarted = learner.DeltaPersister(str(folder))
    ctx.set("run", 2, who="grader")
    snapshot_id = restarted.save_snapshot(ctx)
    check(snapshot_id == "003", f"after snapshots 001 and 002 it returned {snapshot_id!r}")
    after = {name: (folder / name).read_bytes() for name in before}
    check(after == before, "an earlier file was overwritten")
    ctx.set("run", 3, who="grader")
    delta_id = restarted.save_delta(ctx)
    check(delta_id == "003_001", f"its first delta returned {delta_id!r}")

    for found, expected in ((["003", "010"], "011"), (["998", "1000", "999"], "1001")):
        earlier = folder / f"gaps-{expected}"
        earlier.mkdir()
        for number in found:
            (earlier / f"snapshot_{number}.json").write_text('{"run": 0}', encoding="utf-8")
        (earlier / f"delta_{found[-1]}_001.json").write_text('{"run": 1}', encoding="utf-8")
        before = {name: (earlier / name).read_bytes() for name in listing(earlier)}
        snapshot_id = learner.DeltaPersister(str(earlier)).save_snapshot(ctx)
        check(
            snapshot_id == expected,
            f"in a folder holding snapshots {', '.join(found)} the next snapshot was "
            f"{snapshot_id!r}, expected {expected!r} (one more than the highest number)",
        )
        after = {name: (earlier / name).read_bytes() for name in before}
        check(
            after == before, f"next to snapshots {', '.join(found)} an earlier file was overwritten"
        )
        check(
            (earlier / f"snapshot_{expected}.json").is_file(),
            f"snapshot_{expected}.json was not written; the folder holds {listing(earlier)}",
        )


# The property: whatever sequence of writes and saves, every snapshot loads back as the
# state at the last save of its chain.
KEYS = ["a", "b", "d.e"]
VALUES = st.one_of(
    st.integers(-3, 300),
    st.text("xyz", max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=3),
)
SET = st.tuples(st.just("set"), st.sampled_from(KEYS), VALUES)
SNAPSHOT = st.just(("snapshot",))
DELTA = st.just(("delta",))
# Rounds of a few sets and a save (deltas twice as often as snapshots), plus sometimes a
# save with nothing dirty: chains of several deltas that overwrite each other are common.
ROUND = st.tuples(
    st.lists(SET, min_size=1, max_size=3),
    st.one_of(DELTA, DELTA, SNAPSHOT),
    st.lists(st.one_of(DELTA, SNAPSHOT), max_size=1),
).map(lambda parts: [*parts[0], parts[1], *parts[2]])
OPERATIONS = st.tuples(st.lists(SET, max_size=2), st.lists(ROUND, max_size=8)).map(
    lambda parts: [*parts[0], ("snapshot",), *[op for ops in parts[1] for op in ops]]
)


def describe(ops: list[tuple]) -> str:
    return "; ".join(f"set {op[1]}={op[2]!r}" if op[0] == "set" else op[0] for op in ops)


def replay(learner, ops: list[tuple]) -> None:
    """Apply ``ops`` through the learner's objects; fail with the readable sequence."""
    path = shared_folder(learner)
    done: list[tuple] = []
    try:
        ctx = learner.Context()
        persister = learner.DeltaPersister(str(path))
        model: dict[str, Any] = {}
        chains: dict[str, dict[str, Any]] = {}  # snapshot id -> state at its chain's last save
        current = None
        for op in ops:
            done.append(op)
            if op[0] == "set":
                ctx.set(op[1], op[2], who="grader")
                model[op[1]] = copy.deepcopy(op[2])
            elif op[0] == "snapshot":
                current = persister.save_snapshot(ctx)
                if not isinstance(current, str):
                    raise CaseFailed(f"{describe(done)} -> save_snapshot() returned {current!r}")
                chains[current] = copy.deepcopy(model)
            else:
                persister.save_delta(ctx)
                chains[current] = copy.deepcopy(model)
        for snapshot_id, expected in chains.items():
            loaded = persister.load_full_state(snapshot_id).to_dict()
            if loaded != expected:
                raise CaseFailed(
                    f"{describe(ops)} -> load_full_state({snapshot_id!r}) gave {loaded!r}, "
                    f"expected {expected!r}"
                )
    except LearnerException as exc:
        raised = f"your code raised {exc.type}: {exc.message}"
        raise CaseFailed(f"{describe(done)} -> {raised}") from None
    finally:
        shutil.rmtree(path, ignore_errors=True)


@case(
    "3.1",
    1,
    "for any sequence of sets, snapshots and deltas, load_full_state(id) must give the "
    "state at the last save of that snapshot's chain",
    critical=True,
    rules=("3.1-k", "3.1-n", "3.1-r"),
)
def test_3_1_property(learner):
    fatal: list[LearnerError] = []

    @settings(
        max_examples=50,
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(OPERATIONS)
    def property_holds(ops):
        if fatal:
            return
        try:
            replay(learner, ops)
        except LearnerError as exc:  # a hang or crash: stop, do not shrink through it
            fatal.append(exc)

    property_holds()
    if fatal:
        raise fatal[0]


# --------------------------------------------------------------------------- exercise 3.2
CLOCK = (
    "type('FakeClock', (), {'__module__': 'grader', 'now': 0.0, "
    "'__call__': lambda self: self.now})()"
)
SENDER = (
    "type('Sender', (), {'__module__': 'grader', "
    "'__init__': lambda self: (setattr(self, 'received', []), setattr(self, 'tried', []), "
    "setattr(self, 'dicts', []), setattr(self, 'error', None), setattr(self, 'clock', None), "
    "setattr(self, 'takes', 0.0))[0], "
    "'__call__': lambda self, items: (self.dicts.append(isinstance(items, dict)), "
    "self.tried.append(dict(items)), "
    "None if self.clock is None else setattr(self.clock, 'now', self.clock.now + self.takes), "
    "(_ for _ in ()).throw(self.error) if self.error is not None "
    "else self.received.append(dict(items)))[-1]})()"
)


def fake_clock(learner, now: float):
    clock = learner.make(expr(CLOCK))
    set_time(clock, now)
    return clock


def set_time(clock, now: float) -> None:
    """Move the test clock, and confirm (calling it from here) that it reads ``now``."""
    clock.now = now
    confirm(clock() == now, "setting the test clock")


def set_error(sender, error: Any, name: str | None) -> None:
    """Make the test sender raise ``error`` (None: succeed); confirm it took."""
    sender.error = error
    got = sender.error.value()
    took = got is None if name is None else isinstance(got, Remote) and got.remote_type == name
    confirm(took, "making the test's send() fail" if name else "making send() work again")


def smart_sync(learner, sync_threshold, time_threshold, *, clock, send=None):
    return learner.SmartSync(
        sync_threshold=sync_threshold, time_threshold=time_threshold, send=send, clock=clock
    )


ZERO_STATS = {"syncs": 0, "failures": 0, "keys_written": 0}


@case(
    "3.2",
    0.75,
    "should_sync(dirty_count) must return True exactly when dirty_count >= sync_threshold "
    "(before the time threshold has passed)",
    rules=("3.2-b", "3.2-k"),
)
def test_3_2_count_rule(learner):
    clock = fake_clock(learner, 0.0)
    sync = smart_sync(learner, 3, 1000.0, clock=clock)
    answers = {n: sync.should_sync(n) for n in (0, 1, 2, 3, 4, 50)}
    expected = {0: False, 1: False, 2: False, 3: True, 4: True, 50: True}
    check(answers == expected, f"with sync_threshold=3 it answered {answers!r}")
    check(all(type(v) is bool for v in answers.values()), "should_sync() must return a bool")
    one = smart_sync(learner, 1, 1000.0, clock=clock)
    got = (one.should_sync(0), one.should_sync(1))
    check(got == (False, True), f"with sync_threshold=1, should_sync(0), (1) gave {got!r}")


@case(
    "3.2",
    0.5,
    "should_sync() must return True once clock() - last_sync_time >= time_threshold "
    "and at least one key is dirty",
    rules=("3.2-c", "3.2-g", "3.2-i", "3.2-l"),
)
def test_3_2_time_rule(learner):
    clock = fake_clock(learner, 100.0)
    sync = smart_sync(learner, 50, 10.0, clock=clock)
    set_time(clock, 109.5)
    early = sync.should_sync(1)
    check(early is False, f"9.5 s after creation, with 1 dirty key, it returned {early!r}")
    set_time(clock, 110.0)
    exact = sync.should_sync(1)
    check(exact is True, f"exactly 10 s after creation, with 1 dirty key, it returned {exact!r}")
    set_time(clock, 500.0)
    late = sync.should_sync(2)
    check(late is True, f"400 s after creation, with 2 dirty keys, it returned {late!r}")


@case(
    "3.2",
    0.5,
    "should_sync(0) must be False however much time has passed and whatever the "
    "thresholds (even sync_threshold=0), and should_sync() must change nothing",
    rules=("3.2-m", "3.2-n"),
)
def test_3_2_no_dirty_keys(learner):
    clock = fake_clock(learner, 5.0)
    sync = smart_sync(learner, 3, 10.0, clock=clock)
    set_time(clock, 10_000.0)
    answer = sync.should_sync(0)
    check(answer is False, f"with 0 dirty keys, long after the last sync, it returned {answer!r}")
    sync.should_sync(1)
    sync.should_sync(5)
    check(sync.stats.value() == ZERO_STATS, "should_sync() changed the stats")
    last = sync.last_sync_time.value()
    check(last == 5.0, f"after should_sync() calls last_sync_time is {last!r}, not 5.0")
    for threshold in (0, -1):
        eager = smart_sync(learner, threshold, 10.0, clock=clock)
        answer = eager.should_sync(0)
        check(
            answer is False,
            f"with sync_threshold={threshold} and 0 dirty keys it returned {answer!r}",
        )


@case(
    "3.2",
    1,
    "perform_sync(ctx) must send the dirty keys with their current values once, clear "
    "them, count syncs and keys_written, and return True",
    critical=True,
    rules=("3.2-d", "3.2-o", "3.2-p", "3.2-r", "3.2-s"),
)
def test_3_2_successful_sync(learner):
    clock = fake_clock(learner, 0.0)
    sender = learner.make(expr(SENDER))
    sync = smart_sync(learner, 3, 10.0, send=sender, clock=clock)
    ctx = make_context(learner, {"a": 1, "b": 2})
    ctx.set("b", 20, who="grader")
    result = sync.perform_sync(ctx)
    check(result is True, f"a successful sync returned {result!r}")
    received = sender.received.value()
    check(received == [{"a": 1, "b": 20}], f"send() received {received!r}")
    check(ctx.pop_dirty_keys() == [], "the context still had dirty keys after the sync")
    stats = sync.stats.value()
    check(
        stats == {"syncs": 1, "failures": 0, "keys_written": 2},
        f"after one sync of 2 keys stats was {stats!r}",
    )
    ctx.set("c", [3], who="grader")
    check(sync.perform_sync(ctx) is True, "a second successful sync did not return True")
    received = sender.received.value()
    check(received[1:] == [{"c": [3]}], f"the second sync sent {received[1:]!r}")
    dicts = sender.dicts.value()
    check(
        dicts == [True, True],
        f"send() must be called once per sync with one dict {{key: value}}; over two syncs "
        f"it was called {len(dicts)} time(s), with a dict: {dicts!r}",
    )
    stats = sync.stats.value()
    check(
        stats == {"syncs": 2, "failures": 0, "keys_written": 3},
        f"after syncs of 2 and 1 keys stats was {stats!r}",
    )


@case(
    "3.2",
    1,
    "when send() raises, perform_sync() must return False without raising, count a "
    "failure, and keep every key dirty so the next sync sends it",
    critical=True,
    rules=("3.2-e", "3.2-r", "3.2-t", "3.2-u"),
)
def test_3_2_failed_sync(learner):
    clock = fake_clock(learner, 0.0)
    sender = learner.make(expr(SENDER))
    sync = smart_sync(learner, 3, 10.0, send=sender, clock=clock)
    ctx = make_context(learner, {"a": 1, "b": 2})
    set_error(sender, expr("ConnectionError('network down')"), "ConnectionError")
    result = sync.perform_sync(ctx)
    check(result is False, f"a failed sync returned {result!r}")
    stats = sync.stats.value()
    check(stats == {"syncs": 0, "failures": 1, "keys_written": 0}, f"stats was {stats!r}")
    ctx.set("c", 3, who="grader")
    set_error(sender, expr("ValueError('bad payload')"), "ValueError")
    result = sync.perform_sync(ctx)
    check(result is False, f"a second failed sync (ValueError) returned {result!r}")
    ctx.set("b", 22, who="grader")
    set_error(sender, None, None)
    result = sync.perform_sync(ctx)
    check(result is True, f"the sync after the failures returned {result!r}")
    received = sender.received.value()
    expected = [{"a": 1, "b": 22, "c": 3}]
    check(
        received == expected,
        f"after two failed syncs, the next sync sent {received!r}, expected {expected!r}",
    )
    stats = sync.stats.value()
    check(
        stats == {"syncs": 1, "failures": 2, "keys_written": 3},
        f"after two failures and one sync of 3 keys stats was {stats!r}",
    )
    tried = sender.tried.value()
    check(
        tried == [{"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, expected[0]],
        f"three perform_sync() calls (two failing) must call send() once each; it was "
        f"called with {tried!r}",
    )


@case(
    "3.2",
    0.5,
    "last_sync_time must be clock() at creation, then clock() read after each successful "
    "sync (once send() has returned); a failed sync must not change it",
    rules=("3.2-g", "3.2-i", "3.2-j", "3.2-s"),
)
def test_3_2_last_sync_time(learner):
    clock = fake_clock(learner, 42.0)
    sender = learner.make(expr(SENDER))
    sync = smart_sync(learner, 100, 10.0, send=sender, clock=clock)
    start = sync.last_sync_time.value()
    check(start == 42.0, f"at creation (clock 42.0) last_sync_time was {start!r}")
    ctx = make_context(learner, {"a": 1})
    set_time(clock, 50.0)
    sender.clock = clock
    sender.takes = 3.0  # the test's send() moves the clock on by 3 s while it sends
    sync.perform_sync(ctx)
    confirm(clock() == 53.0, "moving the test clock while send() runs")
    after = sync.last_sync_time.value()
    check(
        after == 53.0,
        f"a sync started at 50.0 whose send() returned at 53.0 left last_sync_time at "
        f"{after!r}; it must be clock() read after the successful sync",
    )
    set_time(clock, 62.5)
    answer = sync.should_sync(1)
    check(answer is False, f"9.5 s after the last sync, should_sync(1) returned {answer!r}")
    ctx.set("a", 2, who="grader")
    set_time(clock, 70.0)
    set_error(sender, expr("ConnectionError('down')"), "ConnectionError")
    sync.perform_sync(ctx)
    kept = sync.last_sync_time.value()
    check(kept == 53.0, f"after a failed sync at 70.0 last_sync_time was {kept!r}, not 53.0")
    answer = sync.should_sync(1)
    check(answer is True, f"20 s after the last good sync, should_sync(1) returned {answer!r}")


@case(
    "3.2",
    0.5,
    "stats must start as exactly {'syncs': 0, 'failures': 0, 'keys_written': 0}; "
    "perform_sync() with nothing dirty must return True without calling send(); "
    "send=None must make every sync succeed and count in stats and last_sync_time",
    rules=("3.2-f", "3.2-h", "3.2-q"),
)
def test_3_2_stats_and_edges(learner):
    clock = fake_clock(learner, 0.0)
    sender = learner.make(expr(SENDER))
    sync = smart_sync(learner, 3, 10.0, send=sender, clock=clock)
    stats = sync.stats.value()
    check(stats == ZERO_STATS, f"a new SmartSync had stats {stats!r}")
    ctx = learner.Context()
    set_time(clock, 5.0)
    result = sync.perform_sync(ctx)
    check(result is True, f"with nothing dirty perform_sync() returned {result!r}")
    check(sender.tried.value() == [], "with nothing dirty send() was called")
    check(sync.stats.value() == ZERO_STATS, "with nothing dirty the stats changed")
    check(sync.last_sync_time.value() == 0.0, "with nothing dirty last_sync_time changed")
    silent = smart_sync(learner, 3, 10.0, send=None, clock=clock)
    ctx.set("a", 1, who="grader")
    set_time(clock, 7.0)
    result = silent.perform_sync(ctx)
    check(result is True, f"with send=None perform_sync() returned {result!r}")
    stats = silent.stats.value()
    check(
        stats == {"syncs": 1, "failures": 0, "keys_written": 1},
        f"with send=None stats became {stats!r}",
    )
    check(ctx.pop_dirty_keys() == [], "with send=None the dirty keys were not cleared")
    last = silent.last_sync_time.value()
    check(last == 7.0, f"with send=None a sync at 7.0 left last_sync_time at {last!r}")


@case(
    "3.2",
    0.25,
    "SmartSync() must default to sync_threshold=5, time_threshold=30.0, send=None and "
    "clock=time.time",
    rules=("3.2-a",),
)
def test_3_2_defaults(learner):
    clock = fake_clock(learner, 1000.0)
    sync = learner.SmartSync(clock=clock)
    answers = [sync.should_sync(n) for n in (4, 5)]
    check(
        answers == [False, True],
        f"with the default sync_threshold, should_sync(4) and (5) gave {answers!r}",
    )
    set_time(clock, 1029.5)
    early = sync.should_sync(1)
    set_time(clock, 1030.0)
    due = sync.should_sync(1)
    check(
        (early, due) == (False, True),
        f"with the default time_threshold, should_sync(1) 29.5 s and 30 s after creation "
        f"gave {(early, due)!r}",
    )
    ctx = make_context(learner, {"a": 1})
    result = sync.perform_sync(ctx)
    stats = sync.stats.value()
    check(
        result is True and stats == {"syncs": 1, "failures": 0, "keys_written": 1},
        f"with the default send, perform_sync() returned {result!r} and stats became {stats!r}",
    )
    before = time.time()
    plain = learner.SmartSync()
    start = plain.last_sync_time.value()
    check(
        isinstance(start, float) and before - 5 <= start <= time.time() + 5,
        f"with the default clock, last_sync_time at creation was {start!r}, not time.time()",
    )


# --------------------------------------------------------------------------- exercise 3.3
def size(data: dict[str, Any]) -> int:
    return len(json.dumps(data).encode("utf-8"))


def expected_measure(changes: list[list[Any]], batch_size: int) -> dict[str, dict[str, int]]:
    state: dict[str, Any] = {}
    without = {"operations": 0, "bytes": 0}
    for key, value in changes:
        state[key] = value
        without["operations"] += 1
        without["bytes"] += size(state)
    pending: dict[str, Any] = {}
    tracked = {"operations": 0, "bytes": 0}
    for number, (key, value) in enumerate(changes, start=1):
        pending[key] = value
        if number % batch_size == 0 or number == len(changes):
            tracked["operations"] += 1
            tracked["bytes"] += size(pending)
            pending = {}
    return {"without_tracking": without, "with_tracking": tracked}


def workload(seed: int, count: int) -> list[list[Any]]:
    rng = random.Random(seed)
    hot = [f"sensor.{i:02d}.value" for i in range(6)]
    cold = [f"node.{i}.status" for i in range(80)]
    out = []
    for _ in range(count):
        key = rng.choice(hot) if rng.random() < 0.6 else rng.choice(cold)
        value = rng.choice(
            [rng.randint(-50, 5000), round(rng.uniform(0, 100), 2), rng.choice(["ok", "warn"])]
        )
        out.append([key, value])
    return out


@case(
    "3.3",
    1,
    "measure_persistence() must count one full-state write per change without tracking, "
    "and one dirty-keys write per batch (plus a final partial batch) with tracking, each "
    "costing the bytes of json.dumps with its default arguments",
    rules=("3.3-b", "3.3-c", "3.3-d", "3.3-e"),
)
def test_3_3_small(learner):
    example = [["a", 1], ["b", 2], ["a", 3]]
    got = learner.measure_persistence(example, 2)
    expected = {
        "without_tracking": {"operations": 3, "bytes": 40},
        "with_tracking": {"operations": 2, "bytes": 24},
    }
    check(got == expected, f"for the notebook's example it returned {got!r}")
    changes = [["x", 1], ["y", "two"], ["x", 3], ["x", 4], ["z", [5]], ["y", None], ["x", 7]]
    got = learner.measure_persistence(changes, 3)
    expected = expected_measure(changes, 3)
    check(
        got == expected,
        f"for {changes!r} with batch_size=3 it returned {got!r}, expected {expected!r}",
    )
    text = [["café", "naïve ✓"], ["名前", "世界"], ["café", "ü"], ["café", "ü"], ["n", 1.5]]
    got = learner.measure_persistence(text, 2)
    expected = expected_measure(text, 2)
    check(
        got == expected,
        f"for {text!r} with batch_size=2 it returned {got!r}, expected {expected!r} (bytes "
        "are those of json.dumps with its default arguments, which escapes non-ASCII text)",
    )


@case(
    "3.3",
    1,
    "measure_persistence() must give the exact operations and bytes on a 1,200-change "
    "workload, for any batch size",
    rules=("3.3-b", "3.3-c", "3.3-d"),
)
def test_3_3_workload(learner):
    changes = workload(2024, 1200)
    for batch_size in (1, 7, 50, 5000):
        got = learner.measure_persistence(changes, batch_size)
        expected = expected_measure(changes, batch_size)
        check(
            got == expected,
            f"for 1,200 changes to 86 keys with batch_size={batch_size} it returned "
            f"{got!r}, expected {expected!r}",
        )


@case(
    "3.3",
    0.5,
    "measure_persistence() must give zeros for no changes and raise ValueError for a "
    "batch_size below 1 or not an int (a bool is not an int here)",
    rules=("3.3-f", "3.3-g"),
)
def test_3_3_edges(learner):
    zeros = {
        "without_tracking": {"operations": 0, "bytes": 0},
        "with_tracking": {"operations": 0, "bytes": 0},
    }
    for batch_size in (1, 10):
        got = learner.measure_persistence([], batch_size)
        check(got == zeros, f"for no changes (batch_size={batch_size}) it returned {got!r}")
    for batch_size in (0, -3, True, False, 2.0, 1.5, "3", None):
        raises(
            lambda b=batch_size: learner.measure_persistence([["a", 1]], b),
            "ValueError",
            f"batch_size={batch_size!r}",
        )


@case(
    "3.3",
    0.5,
    "measure_persistence() must return ints in exactly the documented dict, using a "
    "fresh Context on every call, for changes given as lists or tuples",
    rules=("3.3-a", "3.3-e"),
)
def test_3_3_shape(learner):
    changes = workload(7, 40)
    first = learner.measure_persistence(changes, 4)
    second = learner.measure_persistence(changes, 4)
    check(first == second, f"two identical calls returned {first!r} and {second!r}")
    shape_ok = (
        isinstance(first, dict)
        and sorted(first) == ["with_tracking", "without_tracking"]
        and all(
            isinstance(first[k], dict)
            and sorted(first[k]) == ["bytes", "operations"]
            and all(type(v) is int for v in first[k].values())
            for k in first
        )
    )
    check(shape_ok, f"it returned {first!r}")
    check(first == expected_measure(changes, 4), f"for 40 changes it returned {first!r}")
    pairs = [tuple(change) for change in changes[:9]]
    got = learner.measure_persistence(pairs, 4)
    expected = expected_measure(changes[:9], 4)
    check(
        got == expected,
        f"for 9 changes given as (key, value) tuples it returned {got!r}, expected {expected!r}",
    )
