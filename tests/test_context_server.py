"""The context server over real HTTP on 127.0.0.1: the API, its refusals (each followed by
a check that the server still answers), concurrency without lost updates, persistence
across a restart and the command line."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework0.context_server import ContextServer
from framework0.persistence import Persistence


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    """One request with full control over the bytes; returns status, JSON reply, response."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=payload, headers=headers or {})
        response = conn.getresponse()
        text = response.read()
        return response.status, (json.loads(text) if text else {}), response
    finally:
        conn.close()


def alive(server: ContextServer) -> dict[str, Any]:
    """The server must still answer after whatever happened before."""
    status, reply, _ = call(server.port, "GET", "/snapshot")
    assert status == 200
    return reply


@pytest.fixture
def server() -> Iterator[ContextServer]:
    srv = ContextServer("127.0.0.1", 0).start()
    yield srv
    srv.stop()


def test_snapshot_patch_round_trip(server: ContextServer) -> None:
    assert server.url.startswith("http://127.0.0.1:") and server.port != 0
    assert alive(server) == {"version": 0, "data": {}}
    patch = {"set": {"a": 1, "cfg": {"x": [1, 2.5, None, "ü"]}}, "who": "test"}
    status, reply, response = call(server.port, "POST", "/patch", patch)
    assert (status, reply) == (200, {"version": 2})
    assert response.getheader("Content-Type", "").startswith("application/json")
    assert alive(server) == {"version": 2, "data": patch["set"]}
    assert server.ctx.get_history()[-1]["step"] == "test"
    status, reply, _ = call(server.port, "POST", "/patch?ignored=1", {"set": {}})
    assert (status, reply) == (200, {"version": 2})  # an empty patch changes nothing


def test_stale_base_version_is_a_conflict(server: ContextServer) -> None:
    call(server.port, "POST", "/patch", {"set": {"a": 1}})
    status, reply, _ = call(server.port, "POST", "/patch", {"set": {"a": 2}, "base_version": 1})
    assert (status, reply["version"]) == (200, 2)
    status, reply, _ = call(server.port, "POST", "/patch", {"set": {"a": 3}, "base_version": 1})
    assert status == 409 and reply["version"] == 2 and "base_version" in reply["error"]
    assert alive(server) == {"version": 2, "data": {"a": 2}}


def test_bearer_token() -> None:
    with ContextServer(token="s3cret") as srv:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            status, reply, response = call(srv.port, "GET", "/snapshot", headers=headers)
            assert status == 401 and "token" in reply["error"]
            assert response.getheader("WWW-Authenticate", "").startswith("Bearer")
            status, _, _ = call(srv.port, "POST", "/patch", {"set": {"a": 1}}, headers=headers)
            assert status == 401
        good = {"Authorization": "Bearer s3cret"}
        assert call(srv.port, "POST", "/patch", {"set": {"a": 1}}, headers=good)[0] == 200
        assert call(srv.port, "GET", "/snapshot", headers=good)[1]["data"] == {"a": 1}


def test_body_over_the_limit_is_refused_unread() -> None:
    with ContextServer(max_body=100) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.putrequest("POST", "/patch")
        conn.putheader("Content-Length", str(10**9))  # announced, never sent
        conn.endheaders()
        started = time.monotonic()
        response = conn.getresponse()
        assert response.status == 413 and "limit" in json.loads(response.read())["error"]
        assert time.monotonic() - started < 3
        conn.close()
        big = {"set": {"a": "x" * 500}}
        assert call(srv.port, "POST", "/patch", big)[0] == 413  # a body that was really sent
        assert call(srv.port, "POST", "/patch", {"set": {"a": "small"}})[0] == 200
        assert alive(srv)["data"] == {"a": "small"}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b'{"set": {"a": 1}', "JSON"),
        (b"\xff\xfe not utf-8", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"who": "x"}', "'set'"),
        (b'{"set": [["a", 1]]}', "'set'"),
        (b'{"set": {"a": 1}, "who": 7}', "'who'"),
        (b'{"set": {"a": 1}, "base_version": "3"}', "'base_version'"),
        (b'{"set": {"a": 1}, "base_version": true}', "'base_version'"),
        (b'{"set": {"a": 1}, "base_verison": 0}', "base_verison"),
        (b'{"set": {"ok": 1, "bad": NaN}}', "'bad'"),
        (b'{"set": {"ok": 1, "deep": {"x": [1, Infinity]}}}', "'deep'"),
        (b'{"set": {"ok": 1, "": 2}}', "''"),
        (b"[" * 100_000 + b"]" * 100_000, ""),
    ],
)
def test_bad_requests_name_the_problem(server: ContextServer, raw: bytes, named: str) -> None:
    status, reply, _ = call(server.port, "POST", "/patch", raw=raw)
    assert status in (400, 413), reply
    assert named in reply["error"]
    assert alive(server) == {"version": 0, "data": {}}  # all or nothing: "ok" was not stored


def test_missing_or_bad_content_length(server: ContextServer) -> None:
    for length in (None, "abc", "-5"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.putrequest("POST", "/patch")
        if length is not None:
            conn.putheader("Content-Length", length)
        conn.endheaders()
        response = conn.getresponse()
        assert response.status in (400, 411)
        assert "Content-Length" in json.loads(response.read())["error"]
        conn.close()
    alive(server)


def test_unknown_path_and_wrong_method(server: ContextServer) -> None:
    status, reply, _ = call(server.port, "GET", "/nope")
    assert status == 404 and "/nope" in reply["error"]
    for method, path, allowed in [
        ("POST", "/snapshot", "GET"),
        ("GET", "/patch", "POST"),
        ("DELETE", "/snapshot", "GET"),
        ("PUT", "/patch", "POST"),
    ]:
        status, reply, response = call(server.port, method, path, {"set": {}})
        assert status == 405 and allowed in reply["error"]
        assert response.getheader("Allow") == allowed
    alive(server)


def test_handler_errors_are_500_and_the_server_survives(
    server: ContextServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom() -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(server, "snapshot", boom)
    status, reply, _ = call(server.port, "GET", "/snapshot")
    assert status == 500 and "disk on fire" in reply["error"]
    monkeypatch.undo()
    alive(server)


def test_concurrent_clients_lose_no_update(server: ContextServer) -> None:
    clients, patches, increments = 8, 50, 10
    conflicts = []
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            for i in range(patches):
                status, _, _ = call(server.port, "POST", "/patch", {"set": {f"c{n}.k{i}": i}})
                assert status == 200
            for _ in range(increments):  # read-modify-write with optimistic concurrency
                while True:
                    snap = alive(server)
                    patch = {
                        "set": {"counter": snap["data"].get("counter", 0) + 1},
                        "who": f"client{n}",
                        "base_version": snap["version"],
                    }
                    status, reply, _ = call(server.port, "POST", "/patch", patch)
                    if status == 200:
                        break
                    assert status == 409 and isinstance(reply["version"], int)
                    conflicts.append(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    data = alive(server)["data"]
    assert data.pop("counter") == clients * increments
    assert data == {f"c{n}.k{i}": i for n in range(clients) for i in range(patches)}


def test_persistence_across_a_restart(tmp_path: Path) -> None:
    with ContextServer(persist_dir=tmp_path) as first:
        call(first.port, "POST", "/patch", {"set": {"a": 1, "b": [1, 2]}, "who": "w1"})
        call(first.port, "POST", "/patch", {"set": {"a": 2}})
        before = alive(first)
        # every acknowledged patch is already on disk, before any stop()
        assert Persistence(tmp_path).load().to_dict() == before["data"]
    with ContextServer(persist_dir=tmp_path) as second:
        assert alive(second) == before  # same data, and the version did not restart at 0
        status, reply, _ = call(second.port, "POST", "/patch", {"set": {"c": 3}, "base_version": 3})
        assert (status, reply) == (200, {"version": 4})
    assert Persistence(tmp_path).load().to_dict() == {"a": 2, "b": [1, 2], "c": 3}


def test_command_line_server(tmp_path: Path) -> None:
    env = {**os.environ, "FRAMEWORK0_TOKEN": "from-env"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "framework0.context_server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--persist-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        assert call(port, "GET", "/snapshot")[0] == 401
        auth = {"Authorization": "Bearer from-env"}
        status, reply, _ = call(port, "POST", "/patch", {"set": {"k": "v"}}, headers=auth)
        assert (status, reply) == (200, {"version": 1})
        assert call(port, "GET", "/snapshot", headers=auth)[1] == {"version": 1, "data": {"k": "v"}}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Persistence(tmp_path).load().to_dict() == {"k": "v"}
