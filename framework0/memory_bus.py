"""A client for the context server: share a local Context with other workers.

Why it never raises on network trouble: a worker should keep running when the shared
server is down. Every failure is logged as a warning, kept in ``last_error`` (a
``BusError``) and ``last_status``, and reported as ``None`` or ``False``.

``sync`` is last-writer-wins per key: local changes are pushed without ``base_version``
(use ``push_patch`` with one for optimistic concurrency), then the server's state is
pulled. Local changes that could not be pushed stay dirty and win over the server's
values until a later ``sync`` sends them.

Uses ``urllib.request`` only, with a direct connection (proxy variables are ignored: the
context server is an internal service, and a proxy must never see the bearer token). The
HTTP client is imported when a bus first sends a request, so ``import framework0`` does not
pay for it (about 40 ms, two thirds of the package's import time).
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from framework0.context import Context
from framework0.errors import BusError, ContextError
from framework0.logger import get_logger

__all__ = ["MemoryBus"]

if TYPE_CHECKING:
    import urllib.request

_log = get_logger("framework0.memory_bus")


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    """The opener every bus shares: direct connections, no proxy."""
    import urllib.request

    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _same(a: Any, b: Any) -> bool:
    """JSON equality that keeps types apart (Python says ``1 == 1.0 == True``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class MemoryBus:
    """Talk to a ``ContextServer`` at ``server_url`` (``http://host:port``).

    ``name`` is the ``who`` that ``sync`` sends with its patches, so the server's history
    says which worker wrote what.
    """

    def __init__(
        self,
        server_url: str,
        timeout: float = 5.0,
        token: str | None = None,
        name: str = "memory_bus",
    ) -> None:
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"server_url must look like http://host:port, got {server_url!r}")
        self.server_url = server_url.rstrip("/")
        self.timeout = timeout
        self.name = name
        self._token = token
        self._snapshot: dict[str, Any] | None = None
        self.last_version: int | None = None
        """The server version seen last (from a snapshot, a patch or a 409 reply)."""
        self.last_status: int | None = None
        """HTTP status of the last request; None when the server could not be reached."""
        self.last_error: BusError | None = None
        """Why the last failed request failed."""

    # ---------------------------------------------------------------- requests
    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """Send one request; any failure becomes a BusError saying what happened."""
        import http.client
        import urllib.error
        import urllib.request

        url = self.server_url + path
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            try:
                data = json.dumps(body, allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise BusError(f"{method} {url}: the request is not JSON data: {exc}") from exc
            headers["Content-Type"] = "application/json"
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        self.last_status = None
        try:
            with _opener().open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                exc.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BusError(f"cannot reach the context server at {url}: {reason}") from exc
        self.last_status = status
        try:
            reply = json.loads(raw.decode("utf-8"))
        except ValueError:
            reply = None
        if status != 200:
            detail = (
                reply.get("error")
                if isinstance(reply, dict)
                else raw[:200].decode("utf-8", "replace")
            )
            if isinstance(reply, dict) and type(reply.get("version")) is int:
                self.last_version = reply["version"]
            raise BusError(f"{method} {url} answered HTTP {status}: {detail}")
        if not isinstance(reply, dict):
            raise BusError(f"{method} {url} answered 200 without a JSON object")
        return reply

    def _failed(self, exc: BusError) -> None:
        self.last_error = exc
        _log.warning("%s", exc)

    # ------------------------------------------------------------------- API
    def fetch_snapshot(self) -> Context | None:
        """Return the server's state as a new Context, or None (with a warning) on failure."""
        try:
            reply = self._request("GET", "/snapshot")
            version, data = reply.get("version"), reply.get("data")
            if type(version) is not int or not isinstance(data, dict):
                raise BusError(f"GET {self.server_url}/snapshot: malformed reply")
            try:
                ctx = Context.from_dict(data)
            except ContextError as exc:
                raise BusError(f"GET {self.server_url}/snapshot: bad data: {exc}") from exc
        except BusError as exc:
            self._failed(exc)
            return None
        self._snapshot = {"version": version, "data": data}
        self.last_version = version
        return ctx

    def push_patch(self, patch: dict[str, Any]) -> bool:
        """Send ``{"set": {...}, "who": ..., "base_version": n}``; True when applied (200).

        False (with a warning) otherwise; after a 409, ``last_status`` is 409 and
        ``last_version`` holds the server's current version, ready for a retry.
        """
        try:
            reply = self._request("POST", "/patch", patch)
            version = reply.get("version")
            if type(version) is not int:
                raise BusError(f"POST {self.server_url}/patch: malformed reply")
        except BusError as exc:
            self._failed(exc)
            return False
        self.last_version = version
        return True

    def sync(self, local_ctx: Context) -> Context:
        """Push ``local_ctx``'s dirty keys, pull the server's state into it; return it.

        Keys that could not be pushed are marked dirty again (``Context.mark_dirty``), so the
        next ``sync`` or flush still sees them. Pulled keys are set with
        ``who="memory_bus"`` and not marked dirty, so they are not echoed back. The merge
        holds the context's own lock, so writes from other threads are never lost: a key
        written locally during the sync keeps its local value and stays dirty.
        """
        _, outgoing = local_ctx.pop_dirty_items()
        pushed = not outgoing or self.push_patch({"set": outgoing, "who": self.name})
        remote = self.fetch_snapshot()
        with local_ctx.lock:  # re-entrant: set() inside takes it again
            _, fresh = local_ctx.pop_dirty_items()  # written locally while we were away
            keep = list(fresh)
            if not pushed:
                keep += [k for k in outgoing if k not in fresh]  # unchanged since the pop
            if remote is not None:
                skip = set(keep)
                for key in remote.keys():
                    value = remote.get(key)
                    if key not in skip and (
                        key not in local_ctx or not _same(local_ctx.get(key), value)
                    ):
                        local_ctx.set(key, value, who="memory_bus")
                local_ctx.pop_dirty_keys()  # the server's values are not local changes
            local_ctx.mark_dirty(keep)
        return local_ctx

    def get_snapshot(self) -> dict[str, Any]:
        """A copy of the last fetched snapshot, ``{"version": n, "data": {...}}``.

        Before any successful fetch: ``{"version": None, "data": {}}``.
        """
        if self._snapshot is None:
            return {"version": None, "data": {}}
        snapshot: dict[str, Any] = json.loads(json.dumps(self._snapshot))
        return snapshot
