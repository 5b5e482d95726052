"""MemoryBus against a real context server on 127.0.0.1: fetching, pushing, syncing, and
failing softly (None/False plus a warning) when the server is away or refuses."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from framework0.context import Context
from framework0.context_server import ContextServer
from framework0.errors import BusError
from framework0.memory_bus import MemoryBus


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Warnings of framework0.memory_bus (its logger does not propagate to caplog)."""
    handler = Records()
    logger = logging.getLogger("framework0.memory_bus")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


@pytest.fixture
def server() -> Iterator[ContextServer]:
    srv = ContextServer("127.0.0.1", 0).start()
    yield srv
    srv.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fetch_and_push(server: ContextServer) -> None:
    bus = MemoryBus(server.url + "/")
    assert bus.get_snapshot() == {"version": None, "data": {}}
    assert bus.push_patch({"set": {"a": 1, "b": {"c": [1]}}, "who": "t"}) is True
    assert bus.last_version == 2
    ctx = bus.fetch_snapshot()
    assert ctx is not None and ctx.to_dict() == {"a": 1, "b": {"c": [1]}}
    snap = bus.get_snapshot()
    assert snap == {"version": 2, "data": {"a": 1, "b": {"c": [1]}}}
    snap["data"]["a"] = 99  # a copy: the bus's record is not changed
    assert bus.get_snapshot()["data"]["a"] == 1


def test_push_conflict_reports_the_current_version(
    server: ContextServer, warnings: list[str]
) -> None:
    bus = MemoryBus(server.url)
    assert bus.push_patch({"set": {"a": 1}})
    assert bus.push_patch({"set": {"a": 2}, "base_version": 0}) is False
    assert bus.last_status == 409 and bus.last_version == 1
    assert any("409" in w for w in warnings)
    assert bus.push_patch({"set": {"a": 2}, "base_version": bus.last_version}) is True


def test_bad_patch_is_refused_softly(server: ContextServer, warnings: list[str]) -> None:
    bus = MemoryBus(server.url)
    assert bus.push_patch({"set": {"x": float("nan")}}) is False  # not JSON: never sent
    assert bus.push_patch({"set": "nope"}) is False
    assert bus.last_status == 400 and "'set'" in str(bus.last_error)
    assert len(warnings) == 2


def test_nothing_listening(warnings: list[str]) -> None:
    bus = MemoryBus(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert bus.fetch_snapshot() is None
    assert bus.push_patch({"set": {"a": 1}}) is False
    assert bus.last_status is None and isinstance(bus.last_error, BusError)
    assert len(warnings) == 2 and "cannot reach" in warnings[0]


def test_unauthorized_and_server_error_give_none(
    warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ContextServer(token="t0k") as srv:
        assert MemoryBus(srv.url).fetch_snapshot() is None
        assert "401" in warnings[-1]
        bus = MemoryBus(srv.url, token="t0k")
        assert bus.fetch_snapshot() is not None

        def boom() -> Any:
            raise RuntimeError("broken")

        monkeypatch.setattr(srv, "snapshot", boom)
        assert bus.fetch_snapshot() is None
        assert bus.last_status == 500 and "500" in warnings[-1]


def test_bad_url_is_refused_at_once() -> None:
    with pytest.raises(ValueError):
        MemoryBus("localhost:8765")


def test_sync_pushes_dirty_keys_and_pulls_the_others(server: ContextServer) -> None:
    alice, bob = Context(), Context()
    alice_bus, bob_bus = MemoryBus(server.url, name="alice"), MemoryBus(server.url, name="bob")
    alice.set("a", 1)
    alice.set("shared", "from alice")
    assert alice_bus.sync(alice) is alice
    assert server.ctx.to_dict() == {"a": 1, "shared": "from alice"}
    assert server.ctx.get_history()[-1]["step"] == "alice"

    bob.set("b", 2)
    bob_bus.sync(bob)
    assert bob.to_dict() == {"a": 1, "b": 2, "shared": "from alice"}
    assert bob.get_history()[-1]["step"] == "memory_bus"
    assert bob.pop_dirty_keys() == []  # pulled values are not echoed back

    alice_bus.sync(alice)
    assert alice.to_dict() == bob.to_dict() == server.ctx.to_dict()
    version = server.version
    alice_bus.sync(alice)  # nothing new: nothing pushed
    assert server.version == version
    assert alice_bus.last_version == version


def test_sync_keeps_dirty_keys_when_the_push_fails(warnings: list[str]) -> None:
    with ContextServer(token="t0k") as srv:
        ctx = Context()
        ctx.set("a", 1)
        ctx.set("b", [1, 2])
        MemoryBus(srv.url, token="wrong").sync(ctx)
        assert srv.ctx.to_dict() == {}
        assert any("401" in w for w in warnings)
        assert ctx.to_dict() == {"a": 1, "b": [1, 2]}  # nothing lost...
        MemoryBus(srv.url, token="t0k").sync(ctx)  # ...and the next sync sends it
        assert srv.ctx.to_dict() == {"a": 1, "b": [1, 2]}

        MemoryBus(f"http://127.0.0.1:{free_port()}", timeout=1).sync(ctx)  # nothing dirty
        ctx.set("c", 3)
        MemoryBus(f"http://127.0.0.1:{free_port()}", timeout=1).sync(ctx)
        assert ctx.pop_dirty_items()[1] == {"c": 3}


def test_unsent_local_values_win_over_pulled_ones(
    server: ContextServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    MemoryBus(server.url).push_patch({"set": {"a": "server", "b": "server"}})
    ctx = Context()
    ctx.set("a", "local")
    bus = MemoryBus(server.url)
    monkeypatch.setattr(bus, "push_patch", lambda patch: False)  # the push is lost in transit
    bus.sync(ctx)
    assert ctx.to_dict() == {"a": "local", "b": "server"}
    assert ctx.pop_dirty_items()[1] == {"a": "local"}  # still to be sent; "b" is not


def test_sync_takes_the_server_value_even_when_python_calls_it_equal(
    server: ContextServer,
) -> None:
    MemoryBus(server.url).push_patch({"set": {"flag": True, "n": 1.0}})
    ctx = Context()
    ctx.set("flag", 1)
    ctx.set("n", 1)
    ctx.pop_dirty_keys()
    MemoryBus(server.url).sync(ctx)
    assert ctx.get("flag") is True and type(ctx.get("n")) is float


def test_sync_while_another_thread_writes_loses_nothing(server: ContextServer) -> None:
    ctx = Context(max_history=0)
    bus = MemoryBus(server.url)
    done = threading.Event()

    def writer() -> None:
        for i in range(3000):
            ctx.set(f"k{i % 13}", i)
            if i % 100 == 0:
                time.sleep(0.002)  # let syncs interleave
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    syncs = 0
    while not done.is_set():
        bus.sync(ctx)
        syncs += 1
    thread.join()
    bus.sync(ctx)
    assert syncs >= 2
    assert (
        server.ctx.to_dict()
        == ctx.to_dict()
        == {f"k{m}": max(i for i in range(3000) if i % 13 == m) for m in range(13)}
    )
