"""Context: the shared state every recipe step reads and writes.

A Context is a key/value store with three promises the rest of framework0 relies on:

* it holds JSON data only, so any state can be saved, sent and restored exactly;
* every ``set`` is recorded (who, when, before, after), so state can be audited and replayed;
* every ``set`` marks its key dirty, so persistence writes only what changed.

Stored values are private: ``set`` keeps its own copy and readers get copies of
containers, so no caller can change the state or the history behind the Context's back.
"""

from __future__ import annotations

import html
import json
import math
import threading
import time
from collections import deque
from typing import Any

from framework0._json import finite_float, reject_constant, short_repr
from framework0.errors import ContextDecodeError, InvalidKeyError, NotJSONError

__all__ = ["Context", "HistoryEntry"]

HistoryEntry = dict[str, Any]
"""``{"timestamp": float, "step": who, "key": str, "before": value, "after": value}``."""

_MISSING = object()
_SCALARS = (str, int, float, bool, type(None))
_EXACT_SCALARS = frozenset(_SCALARS)


def _copy(value: Any) -> Any:
    """Copy JSON data (already validated), faster than ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    return value


MAX_DEPTH = 200
"""Deepest nesting a value may have: deeper data is almost surely a bug, and copying it
recursively would hit Python's recursion limit."""


def _json_copy(key: str, value: Any, path: str, active: set[int]) -> Any:
    """Validate ``value`` as JSON data and return a private copy of it.

    ``path`` is where ``value`` sits, written like ``config.servers[2].port``;
    ``active`` holds the ids of the containers being walked, to catch cycles.
    Subclasses of str, int and float (enums, numpy scalars) are stored as the plain
    value ``json.dumps`` would write.
    """
    kind = type(value)
    if kind in _EXACT_SCALARS:
        if kind is float and not math.isfinite(value):
            raise NotJSONError(key, path, f"is {value!r}, which JSON cannot represent")
        return value
    if kind is dict or kind is list or isinstance(value, (dict, list)):
        if id(value) in active:
            raise NotJSONError(key, path, "contains itself (a cyclic structure)")
        if len(active) >= MAX_DEPTH:
            raise NotJSONError(key, path, f"is nested more than {MAX_DEPTH} levels deep")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                out: dict[str, Any] = {}
                for k, v in value.items():
                    if not isinstance(k, str):
                        raise NotJSONError(
                            key,
                            path,
                            f"has a key {k!r} of type {type(k).__name__}; "
                            "JSON object keys must be str",
                        )
                    k = str.__str__(k)
                    out[k] = _json_copy(key, v, f"{path}.{k}", active)
                return out
            return [_json_copy(key, v, f"{path}[{i}]", active) for i, v in enumerate(value)]
        finally:
            active.discard(id(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):  # e.g. IntEnum: store the plain number JSON will carry
        return int.__int__(value)
    if isinstance(value, float):
        return _json_copy(key, float.__float__(value), path, active)
    if isinstance(value, str):  # a str Enum's str() is "Color.RED"; JSON writes "red"
        return str.__str__(value)
    raise NotJSONError(
        key, path, f"is a {type(value).__name__} ({short_repr(value)}), which is not JSON data"
    )


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise InvalidKeyError(f"context keys must be str, got {type(key).__name__} {key!r}")
    text = key if type(key) is str else str.__str__(key)  # a str subclass: its plain str
    if not text:
        raise InvalidKeyError("context keys must be non-empty strings, got ''")
    return text


class Context:
    """A thread-safe store of JSON data with change history and dirty-key tracking.

    ``max_history`` bounds the history (oldest entries are dropped first); ``None``
    keeps everything, which is what you want while learning and debugging.
    """

    def __init__(self, max_history: int | None = None) -> None:
        if max_history is not None and (not isinstance(max_history, int) or max_history < 0):
            raise ValueError(f"max_history must be a non-negative int or None, got {max_history!r}")
        self._data: dict[str, Any] = {}
        self._history: deque[HistoryEntry] = deque(maxlen=max_history)
        self._dirty: dict[str, None] = {}  # an ordered set: pop order = first-dirtied order
        self._version = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ reading
    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` when the key was never set.

        Reads take no lock: stored values are never mutated in place, only replaced,
        and a single dict lookup is atomic in CPython.
        """
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            return default
        kind = type(value)
        return _copy(value) if kind is dict or kind is list else value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[str]:
        """The keys, in the order they were first set."""
        return list(self._data)

    def to_dict(self) -> dict[str, Any]:
        """A copy of the whole state as a plain dict."""
        with self._lock:
            data: dict[str, Any] = _copy(self._data)
        return data

    def get_history(self) -> list[HistoryEntry]:
        """A copy of the history, oldest first."""
        with self._lock:
            return [_copy(entry) for entry in self._history]

    @property
    def version(self) -> int:
        """How many ``set`` calls this context has seen; grows by one per ``set``."""
        return self._version

    @property
    def max_history(self) -> int | None:
        return self._history.maxlen

    # ------------------------------------------------------------------ writing
    def set(self, key: str, value: Any, who: str | None = None) -> None:
        """Store a copy of ``value`` under ``key``, record it in the history, mark it dirty.

        The key becomes dirty even when the value is unchanged: a ``set`` is an event
        worth persisting and auditing, and comparing deep values on every write
        would cost more than it saves. A value that is not JSON data raises
        ``NotJSONError`` (a ``TypeError``) naming the key and the path, and the
        context is left as it was.
        """
        if type(key) is not str or not key:
            key = _check_key(key)
        if who is not None and type(who) is not str:
            who = str(who)  # the history must not hold a caller's mutable object
        if type(value) in _EXACT_SCALARS and type(value) is not float:
            stored = value
        else:
            stored = _json_copy(key, value, key, set())
        with self._lock:
            before = self._data.get(key)
            self._data[key] = stored
            self._history.append(
                {
                    "timestamp": time.time(),
                    "step": who,
                    "key": key,
                    "before": before,
                    "after": stored,
                }
            )
            self._dirty[key] = None
            self._version += 1

    def pop_dirty_keys(self) -> list[str]:
        """Return the keys set since the last call, each once, and forget them."""
        with self._lock:
            keys = list(self._dirty)
            self._dirty.clear()
            return keys

    def pop_dirty_items(self) -> tuple[int, dict[str, Any]]:
        """Take the dirty keys with their values in one step (a consistent cut).

        Returns ``(version, {key: value})``: exactly the state of those keys at
        ``version``, even while other threads keep writing. Persistence uses this so
        that every delta it writes is a state the context really had.
        """
        with self._lock:
            items = {k: _copy(self._data[k]) for k in self._dirty}
            self._dirty.clear()
            return self._version, items

    def mark_dirty(self, keys: list[str]) -> None:
        """Mark keys dirty again, without a history entry.

        For a consumer that took keys with ``pop_dirty_items`` and could not save or send
        them: it gives them back so the next flush or sync still sees them. Keys the
        context does not hold are ignored.
        """
        with self._lock:
            for key in keys:
                if key in self._data:
                    self._dirty[key] = None

    @property
    def lock(self) -> threading.RLock:
        """The context's re-entrant lock: hold it to make several calls one atomic step."""
        return self._lock

    def take_snapshot(self) -> tuple[int, dict[str, Any]]:
        """Copy the whole state and clear the dirty keys in one step (a full checkpoint)."""
        with self._lock:
            self._dirty.clear()
            return self._version, _copy(self._data)

    def merge_from(self, other: Context, prefix: str | None = None) -> None:
        """Bring every key of ``other`` into this context, last write wins.

        ``other``'s history is replayed in order, each write keeping its ``who``, so the
        merged history says which worker produced what. Keys that ``other`` holds
        without history (restored by ``from_json`` or dropped by ``max_history``) are
        set first, with ``who="merge_from"``. ``prefix`` is prepended to every key as
        is: pass ``"node1."`` to get ``node1.<key>``.
        """
        if not isinstance(other, Context):
            raise TypeError(f"merge_from() needs a Context, got {type(other).__name__}")
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str or None, got {type(prefix).__name__}")
        with other._lock:  # copy first: merging a context into itself must not deadlock
            data = dict(other._data)
            history = list(other._history)
        pre = prefix or ""
        replayed = {entry["key"] for entry in history}
        with self._lock:
            for key, value in data.items():
                if key not in replayed:
                    self._record(pre + key, value, "merge_from")
            for entry in history:
                self._record(pre + entry["key"], entry["after"], entry["step"])

    def _record(self, key: str, stored: Any, who: str | None) -> None:
        """``set`` for a value that is already a private, validated copy (lock held)."""
        self._history.append(
            {
                "timestamp": time.time(),
                "step": who,
                "key": key,
                "before": self._data.get(key),
                "after": stored,
            }
        )
        self._data[key] = stored
        self._dirty[key] = None
        self._version += 1

    # ------------------------------------------------------------ serialization
    def to_json(self, indent: int | None = None) -> str:
        """The state as a JSON object. Data only: history and dirty keys are not included."""
        with self._lock:
            return json.dumps(self._data, indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, j: str | bytes, max_history: int | None = None) -> Context:
        """Build a context from ``to_json`` text: same data, empty history, no dirty keys."""
        try:
            data = json.loads(j, parse_constant=reject_constant, parse_float=finite_float)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ContextDecodeError(f"from_json: not valid JSON: {exc}") from exc
        except ValueError as exc:
            raise ContextDecodeError(f"from_json: {exc}") from exc
        except TypeError as exc:
            raise ContextDecodeError(
                f"from_json: expected str or bytes, got {type(j).__name__}"
            ) from exc
        if not isinstance(data, dict):
            raise ContextDecodeError(
                "from_json: expected a JSON object of key/value pairs, "
                f"got a JSON {_json_kind(data)}"
            )
        try:
            return cls.from_dict(data, max_history=max_history)
        except (InvalidKeyError, NotJSONError) as exc:
            raise ContextDecodeError(f"from_json: {exc}") from exc

    @classmethod
    def from_dict(cls, data: dict[str, Any], max_history: int | None = None) -> Context:
        """Build a context holding ``data`` with empty history and no dirty keys."""
        ctx = cls(max_history=max_history)
        ctx._data = {_check_key(k): _json_copy(k, v, k, set()) for k, v in data.items()}
        return ctx

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        with self._lock:
            keys = list(self._data)
            shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
            return (
                f"<Context {len(keys)} keys [{shown}], {len(self._history)} history entries, "
                f"{len(self._dirty)} dirty>"
            )

    def _repr_html_(self) -> str:
        """Jupyter shows the keys grouped by their dotted namespaces, with the last writer."""
        with self._lock:
            data = dict(self._data)
            last_who: dict[str, Any] = {e["key"]: e["step"] for e in self._history}
            dirty = set(self._dirty)
        rows = []
        previous: list[str] = []
        for key in sorted(data):
            parts = key.split(".")
            shared = 0  # namespace rows already drawn for the previous key
            limit = min(len(parts), len(previous)) - 1
            while shared < limit and parts[shared] == previous[shared]:
                shared += 1
            for depth in range(shared, len(parts) - 1):
                rows.append(_html_row(depth, f"<b>{html.escape(parts[depth])}</b>"))
            mark = " &#9679;" if key in dirty else ""
            rows.append(
                _html_row(
                    len(parts) - 1,
                    html.escape(parts[-1]) + mark,
                    f"<code>{html.escape(short_repr(data[key], 80))}</code>",
                    html.escape(str(last_who.get(key) or "")),
                    title=key,
                )
            )
            previous = parts
        return (
            f"<div><b>Context</b>: {len(data)} keys, {len(self._history)} history entries, "
            f"{len(dirty)} dirty (&#9679;)<table><tr><th>key</th><th>value</th><th>last set by</th>"
            f"</tr>{''.join(rows)}</table></div>"
        )


def _html_row(depth: int, label: str, value: str = "", who: str = "", title: str = "") -> str:
    tip = f" title='{html.escape(title)}'" if title else ""
    return (
        f"<tr><td style='padding-left:{depth * 1.2}em'{tip}>{label}</td>"
        f"<td>{value}</td><td>{who}</td></tr>"
    )


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
