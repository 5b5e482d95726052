"""A small HTTP server that shares one Context between processes and machines.

Why: workers on other hosts need the same state; this is the standard library only, so it
runs anywhere Python does. Start it with::

    python -m framework0.context_server --host 127.0.0.1 --port 8765 [--token T] [--persist-dir D]

API (JSON in, JSON out; errors are ``{"error": "..."}`` naming the bad field or key):

* ``GET /snapshot`` -> ``{"version": n, "data": {...}}``
* ``POST /patch`` with ``{"set": {key: value}, "who": str, "base_version": n}``
  -> ``{"version": m}``. ``who`` and ``base_version`` are optional. A patch is atomic:
  every value is checked against Context's JSON rules before any is stored. With
  ``base_version`` the patch is applied only if nobody wrote since (optimistic
  concurrency), else 409 with the current ``version``.

Version: the count of key writes the server has applied (``Context.version``), so a patch
of three keys adds three; with ``--persist-dir`` it continues from the saved state across
restarts instead of starting again at 0, so old ``base_version`` values do not match new
states by accident.

Persistence: with a ``persist_dir`` the state is loaded at start and flushed (a crash-safe
delta) after every patch, before the reply: a 200 means the patch is on disk. If that
write fails the patch stays applied in memory and the reply is 500.

Security: the optional bearer token (or env ``FRAMEWORK0_TOKEN``, which keeps it out of
``ps``) is compared in constant time. Bodies above ``max_body`` get 413 unread. There is no
TLS: bind to 127.0.0.1 or put it behind a TLS proxy.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import signal
import socket
import socketserver
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from framework0.context import Context
from framework0.errors import ContextError
from framework0.logger import get_logger
from framework0.persistence import Persistence

__all__ = ["ContextServer", "main"]

_log = get_logger("framework0.context_server")
_ROUTES = {"/snapshot": "GET", "/patch": "POST"}
_PATCH_FIELDS = ("set", "who", "base_version")


class _BadRequest(Exception):
    """A request the client must fix; ``status`` and the message go back as JSON."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 refuses connections under a burst of clients
    app: ContextServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can stall for seconds on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = 30  # a client that stops sending must not hold a thread forever
    server_version = "framework0-context-server"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        self._replied = False
        self._unread = 0
        app = self.server.app
        try:
            if not app._authorized(self.headers.get("Authorization")):
                raise _BadRequest(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
            path = urlsplit(self.path).path
            allowed = _ROUTES.get(path)
            if allowed is None:
                raise _BadRequest(HTTPStatus.NOT_FOUND, f"no such path: {path}")
            if method != allowed:
                raise _BadRequest(
                    HTTPStatus.METHOD_NOT_ALLOWED, f"{path} accepts {allowed}, not {method}"
                )
            if path == "/snapshot":
                version, data = app.snapshot()
                self._reply(HTTPStatus.OK, {"version": version, "data": data})
            else:
                self._reply(HTTPStatus.OK, {"version": app.apply_patch(self._read_json())})
        except _BadRequest as exc:
            self._reply(exc.status, {"error": str(exc), **exc.extra})
        except Exception as exc:  # the server must outlive any request
            _log.exception("error while handling %s %s", method, self.path)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {exc}"})

    def _read_json(self) -> Any:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length header is required")
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST, f"bad Content-Length: {length_text!r}"
            ) from None
        max_body = self.server.app.max_body
        if length > max_body:
            self._unread = length
            raise _BadRequest(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes is over the limit of {max_body}",
            )
        body = self.rfile.read(length)
        if len(body) < length:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body is shorter than Content-Length")
        try:
            # NaN/Infinity parse here on purpose: the value check then names their key.
            return json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        if self._replied:  # headers already gone: the connection is all we can close
            self.close_connection = True
            return
        self._replied = True
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="framework0"')
        elif status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", _ROUTES.get(urlsplit(self.path).path, ""))
        unread = self._unread
        if unread:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if unread:
            self._discard_unread(unread)

    def _discard_unread(self, unread: int) -> None:
        """Close politely after a 413: closing with unread data sends a TCP reset, which can
        destroy our reply before the client reads it. So stop writing, then drop (never
        store) what the client already sent, for a bounded time and amount."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            budget = min(unread, 4 * 1024 * 1024)
            while budget > 0:
                chunk = self.connection.recv(min(65536, budget))
                if not chunk:
                    break
                budget -= len(chunk)
        except OSError:
            pass


class ContextServer:
    """Serve one Context over HTTP from a background thread (``start``/``stop``).

    ``port=0`` picks a free port; ``url`` tells which. See the module doc for the API.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        persist_dir: str | os.PathLike[str] | None = None,
        max_body: int = 1_000_000,
    ) -> None:
        if not isinstance(max_body, int) or max_body < 0:
            raise ValueError(f"max_body must be an int >= 0, got {max_body!r}")
        if token is not None and not token:
            raise ValueError("token must be a non-empty string or None")
        self.host = host
        self.port = port
        self.max_body = max_body
        self._expected_auth = f"Bearer {token}".encode() if token is not None else None
        self._lock = threading.Lock()  # one patch or snapshot at a time: atomic patches
        self.persistence = Persistence(persist_dir) if persist_dir is not None else None
        if self.persistence is not None:
            self.ctx = self.persistence.load(max_history=1000)
            self._base_version = self.persistence.loaded_version
        else:
            self.ctx, self._base_version = Context(max_history=1000), 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- life cycle
    def start(self) -> ContextServer:
        """Bind and serve in a daemon thread; returns self so tests can chain it."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        httpd = cls((self.host, self.port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the loop to notice
            name=f"context-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        _log.info("context server listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and write a final flush (if persisting)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            if self._thread is not None:
                self._thread.join()
        if self.persistence is not None:
            with self._lock:
                self.persistence.flush(self.ctx)

    def __enter__(self) -> ContextServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server (the real port when 0 was asked)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def version(self) -> int:
        return self._base_version + self.ctx.version

    # ------------------------------------------------------------- operations
    def _authorized(self, header: str | None) -> bool:
        if self._expected_auth is None:
            return True
        given = (header or "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self._expected_auth)

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """The version and a copy of the data, taken together."""
        with self._lock:
            return self.version, self.ctx.to_dict()

    def apply_patch(self, patch: Any) -> int:
        """Check a whole patch, then apply all of it or nothing; return the new version."""
        if not isinstance(patch, dict):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        unknown = sorted(set(patch) - set(_PATCH_FIELDS))
        if unknown:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"unknown field(s): {', '.join(unknown)}")
        if "set" not in patch:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "missing field 'set'")
        items = patch["set"]
        if not isinstance(items, dict):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "field 'set' must be a JSON object")
        who = patch.get("who")
        if who is not None and not isinstance(who, str):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "field 'who' must be a string")
        base = patch.get("base_version")
        if base is not None and type(base) is not int:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "field 'base_version' must be an integer")
        checked = Context(max_history=0)  # Context's own rules, on a scratch copy
        for key, value in items.items():
            try:
                checked.set(key, value)
            except ContextError as exc:
                raise _BadRequest(
                    HTTPStatus.BAD_REQUEST, f"bad value for key {key!r}: {exc}"
                ) from None
        with self._lock:
            if base is not None and base != self.version:
                raise _BadRequest(
                    HTTPStatus.CONFLICT,
                    f"base_version {base} is stale: the current version is {self.version}",
                    version=self.version,
                )
            for key in checked.keys():
                self.ctx.set(key, checked.get(key), who=who or "context_server")
            version = self.version
        if self.persistence is not None and items:
            self.persistence.flush(self.ctx)  # returns once this patch is on disk
        return version


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM, then stop cleanly (final flush included)."""
    parser = argparse.ArgumentParser(
        prog="python -m framework0.context_server", description="Share a Context over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--token", default=os.environ.get("FRAMEWORK0_TOKEN") or None)
    parser.add_argument("--persist-dir", default=None)
    parser.add_argument("--max-body", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    server = ContextServer(args.host, args.port, args.token, args.persist_dir, args.max_body)
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    print(f"listening on {server.url}", flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
