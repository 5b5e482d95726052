"""Persistence: round trips, deltas hold only what changed, consistent cuts under load,
pruning, loud failure on damaged files, temp-file cleanup, and survival of SIGKILL."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import framework0.persistence as persistence_module
from framework0.context import Context
from framework0.errors import CorruptStateError, PersistenceError
from framework0.persistence import Persistence

REPO = Path(__file__).resolve().parents[1]


def state_files(directory: Path) -> list[Path]:
    """Snapshot and delta files in sequence order."""
    files = [p for p in directory.iterdir() if p.name.startswith(("snapshot_", "delta_"))]
    return sorted(files, key=lambda p: int(p.stem.split("_")[1]))


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_round_trip_through_a_new_instance(tmp_path: Path) -> None:
    ctx = Context()
    ctx.set("name", "Zoë ✓")
    ctx.set("config", {"servers": [{"port": 80}, {"port": None}], "ratio": 0.25, "on": True})
    ctx.set("count", 3)
    path = Persistence(tmp_path).flush(ctx)
    assert path is not None and path.name == "snapshot_000001.json"
    loaded = Persistence(tmp_path).load()
    assert loaded.to_dict() == ctx.to_dict()
    assert loaded.pop_dirty_keys() == []  # a loaded state has nothing left to save


def test_empty_directory_and_nothing_dirty(tmp_path: Path) -> None:
    p = Persistence(tmp_path / "new" / "dir")
    assert p.load().to_dict() == {}
    ctx = Context()
    assert p.flush(ctx) is None  # nothing to save yet
    ctx.set("a", 1)
    assert p.flush(ctx) is not None
    assert p.flush(ctx) is None  # nothing changed since
    assert len(state_files(tmp_path / "new" / "dir")) == 1


def test_delta_holds_only_dirty_keys(tmp_path: Path) -> None:
    p = Persistence(tmp_path)
    ctx = Context()
    for key in "abc":
        ctx.set(key, key * 3)
    first = p.flush(ctx)
    ctx.set("b", {"changed": True})
    ctx.set("d", [1, 2])
    second = p.flush(ctx)
    assert first is not None and second is not None
    record = read(second)
    assert second.name == "delta_000002.json"
    assert record["kind"] == "delta" and record["sequence"] == 2
    assert record["version"] == ctx.version
    assert record["data"] == {"b": {"changed": True}, "d": [1, 2]}
    assert read(first)["kind"] == "snapshot"
    assert p.load().to_dict() == ctx.to_dict()


def test_snapshot_every_full_and_restart(tmp_path: Path) -> None:
    p = Persistence(tmp_path, snapshot_every=3)
    ctx = Context()
    kinds = []
    for i in range(8):
        ctx.set(f"k{i}", i)
        path = p.flush(ctx)
        assert path is not None
        kinds.append(read(path)["kind"])
    assert kinds == ["snapshot", "delta", "delta", "delta", "snapshot", "delta", "delta", "delta"]
    ctx.set("x", 1)
    forced = p.flush(ctx, full=True)
    assert forced is not None and read(forced)["kind"] == "snapshot"
    assert read(forced)["data"] == ctx.to_dict()

    # A restarted process continues the chain from what it loaded, versions keep growing.
    p2 = Persistence(tmp_path, snapshot_every=3)
    again = p2.load()
    assert p2.loaded_version == ctx.version
    again.set("y", 2)
    path = p2.flush(again)
    assert path is not None and read(path)["kind"] == "delta"
    assert read(path)["version"] == ctx.version + 1
    assert Persistence(tmp_path).load().to_dict() == {**ctx.to_dict(), "y": 2}


def test_flushing_another_context_replaces_the_state(tmp_path: Path) -> None:
    """A delta on top of a different context's files would mix two states."""
    p = Persistence(tmp_path)
    one = Context()
    one.set("old", 1)
    p.flush(one)
    two = Context()
    two.set("new", 2)
    path = p.flush(two)
    assert path is not None and read(path)["kind"] == "snapshot"
    assert p.load().to_dict() == {"new": 2}


def test_consistent_cut_under_concurrent_writes(tmp_path: Path) -> None:
    """Every file must hold exactly a state the context had at the version it records."""
    ctx = Context(max_history=0)
    p = Persistence(tmp_path, snapshot_every=4, max_history=1_000_000)
    log: list[str] = []  # log[n - 1] is the key set to n by the n-th set (version n)
    done = threading.Event()

    def writer() -> None:
        for n in range(1, 30_001):
            key = f"k{n % 7}"
            ctx.set(key, n)
            log.append(key)
            if n % 500 == 0:
                time.sleep(0.0005)  # let the flusher in often
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        p.flush(ctx)
    thread.join()
    p.flush(ctx)

    files = state_files(tmp_path)
    assert len(files) >= 5, "the flusher should have interleaved with the writer"
    state: dict[str, int] = {}
    seen = 0
    for path in files:
        record = read(path)
        version = record["version"]
        assert version >= seen
        changed = set(log[seen:version])
        for n in range(seen + 1, version + 1):
            state[log[n - 1]] = n
        expected = state if record["kind"] == "snapshot" else {k: state[k] for k in changed}
        assert record["data"] == expected, path.name
        seen = version
    assert seen == 30_000
    assert p.load().to_dict() == ctx.to_dict()


def test_pruning_keeps_the_newest_chain(tmp_path: Path) -> None:
    p = Persistence(tmp_path, max_history=5, snapshot_every=100)
    ctx = Context()
    for i in range(40):
        ctx.set(f"k{i % 9}", i)
        p.flush(ctx)
        files = state_files(tmp_path)
        assert len(files) <= 5
        assert files[0].name.startswith("snapshot_")  # never a delta without its base
    assert p.load().to_dict() == ctx.to_dict()
    numbers = [int(f.stem.split("_")[1]) for f in state_files(tmp_path)]
    assert numbers == list(range(numbers[0], 41))  # sequence numbers only grow

    one = Persistence(tmp_path / "one", max_history=1)
    for i in range(5):
        ctx.set("z", i)
        one.flush(ctx)
    assert [f.name for f in state_files(tmp_path / "one")] == ["snapshot_000005.json"]
    assert one.load().to_dict() == ctx.to_dict()


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated
        lambda text: "",  # empty
        lambda text: "\x00\x00garbage",
        lambda text: json.dumps([1, 2]),  # valid JSON, wrong shape
        lambda text: text.replace('"delta"', '"snapshot"'),  # kind does not match the name
        lambda text: text.replace('"data": {', '"data": 5, "x": {'),
    ],
    ids=["truncated", "empty", "garbage", "not-object", "wrong-kind", "bad-data"],
)
def test_damaged_file_names_itself(tmp_path: Path, damage: Any) -> None:
    p = Persistence(tmp_path)
    ctx = Context()
    ctx.set("a", 1)
    p.flush(ctx)
    ctx.set("b", 2)
    delta = p.flush(ctx)
    assert delta is not None
    delta.write_text(damage(delta.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(CorruptStateError, match=delta.name):
        Persistence(tmp_path).load()


def test_missing_snapshot_or_gap_is_an_error(tmp_path: Path) -> None:
    p = Persistence(tmp_path)
    ctx = Context()
    for i in range(3):
        ctx.set("a", i)
        p.flush(ctx)
    (tmp_path / "delta_000002.json").unlink()  # a hole in the chain
    with pytest.raises(CorruptStateError, match="delta_000003.json"):
        Persistence(tmp_path).load()
    (tmp_path / "snapshot_000001.json").unlink()
    with pytest.raises(CorruptStateError, match="delta_000003.json"):
        Persistence(tmp_path).load()


def test_stale_temp_files_are_cleaned_at_start_up(tmp_path: Path) -> None:
    ctx = Context()
    ctx.set("a", 1)
    Persistence(tmp_path).flush(ctx)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = [
        tmp_path / f".delta_000002.json.{dead.stdout.strip()}.deadbeef.tmp",
        tmp_path / "snapshot_000009.json.tmp",
        tmp_path / ".tmpabc",
    ]
    for path in stale:
        path.write_text('{"half', encoding="utf-8")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine", encoding="utf-8")
    p = Persistence(tmp_path)
    assert not any(path.exists() for path in stale)
    assert keep.exists()
    assert p.load().to_dict() == {"a": 1}


def test_failed_write_is_reported_and_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = Persistence(tmp_path)
    ctx = Context()
    ctx.set("a", 1)
    p.flush(ctx)
    real = persistence_module.atomic_write

    def broken(path: Path, payload: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence_module, "atomic_write", broken)
    ctx.set("b", 2)
    with pytest.raises(PersistenceError, match="No space left"):
        p.flush(ctx)
    monkeypatch.setattr(persistence_module, "atomic_write", real)
    ctx.set("c", 3)
    path = p.flush(ctx)  # "b" left the dirty set with the failed delta: a snapshot repairs it
    assert path is not None and read(path)["kind"] == "snapshot"
    assert p.load().to_dict() == {"a": 1, "b": 2, "c": 3}


def test_background_flush_and_its_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = Persistence(tmp_path, flush_interval_sec=0.02)
    ctx = Context()
    p.start_background_flush(ctx)
    with pytest.raises(PersistenceError):
        p.start_background_flush(ctx)
    ctx.set("a", 1)
    deadline = time.monotonic() + 5
    while not state_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Persistence(tmp_path).load().to_dict() == {"a": 1}
    ctx.set("last", True)
    p.stop_background_flush()  # the final flush saves what the thread had no time for
    assert Persistence(tmp_path).load().to_dict() == {"a": 1, "last": True}

    real = persistence_module.atomic_write

    def broken(path: Path, payload: bytes) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(persistence_module, "atomic_write", broken)
    p.start_background_flush(ctx)
    ctx.set("b", 2)
    deadline = time.monotonic() + 5
    while p.last_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(p.last_error, PersistenceError)
    monkeypatch.setattr(persistence_module, "atomic_write", real)
    with pytest.raises(PersistenceError, match="background flush"):
        p.stop_background_flush()
    assert Persistence(tmp_path).load().to_dict() == {"a": 1, "last": True, "b": 2}


# --------------------------------------------------------------------------- crash test
# The writer imports only framework0's persistence modules (a bare package object skips
# framework0/__init__.py and its heavy imports), so 30+ restarts stay fast.
WRITER = """
import sys, types
pkg = types.ModuleType("framework0")
pkg.__path__ = [sys.argv[1]]
sys.modules["framework0"] = pkg
from framework0.persistence import Persistence

p = Persistence(sys.argv[2], max_history=12, snapshot_every=4)
ctx = p.load()
i = ctx.get("counter", 0)
while True:
    i += 1
    ctx.set(f"k{i % 7}", i)
    ctx.set("pad", [i] * 300)
    ctx.set("counter", i)
    p.flush(ctx)
    sys.stdout.write(f"{i}\\n")
    sys.stdout.flush()
"""


def expected_state(counter: int) -> dict[str, Any]:
    """The writer's state after iteration ``counter`` (its only flushed states)."""
    if counter == 0:
        return {}
    state: dict[str, Any] = {f"k{j % 7}": j for j in range(max(1, counter - 6), counter + 1)}
    state.update(pad=[counter] * 300, counter=counter)
    return state


def test_sigkill_at_random_moments_never_loses_acknowledged_state(tmp_path: Path) -> None:
    rng = random.Random(1234)
    acknowledged = loaded_counter = 0
    kills = torn = 0
    started = time.monotonic()
    while kills < 35 or (kills < 60 and loaded_counter < 50):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(REPO / "framework0"), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = ""
        if kills % 3:  # most kills land in the write loop, the others anywhere (start-up too)
            assert proc.stdout is not None
            first = proc.stdout.readline()
            time.sleep(rng.uniform(0, 0.04))
        else:
            time.sleep(rng.uniform(0.02, 0.15))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        out = first + out
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        acks = [int(line) for line in out.split("\n")[:-1]]  # the last piece may be cut
        if acks:
            acknowledged = max(acknowledged, acks[-1])

        torn += any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        reader = Persistence(tmp_path, max_history=12, snapshot_every=4)
        ctx = reader.load()  # must never fail, never come back empty-handed
        state = ctx.to_dict()
        counter = state.get("counter", 0)
        assert counter >= acknowledged, f"kill {kills}: lost acknowledged flush {acknowledged}"
        assert counter >= loaded_counter, "durable state went back in time"
        assert state == expected_state(counter), f"kill {kills}: a state the writer never had"
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(state_files(tmp_path)) <= 12  # opening the directory re-applies the bound
        loaded_counter = counter
    assert loaded_counter > 0
    print(f"{kills} kills, {torn} during a write, {loaded_counter} flushes survived")
    assert time.monotonic() - started < 30
