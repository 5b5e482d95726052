"""The bridge's wire format, shared by the trusted client and the untrusted worker.

Values travel as JSON. What JSON cannot say exactly travels as an object tagged with
``TAG``: ``{"__f0__": "tuple", "items": [...]}``, ``{"__f0__": "dict", "items": {...}}`` (a
dict that has the tag as a key), ``{"__f0__": "float", "value": "nan"}``, and the two leaves
only one side makes: ``handle`` (a live object kept in the worker) and ``expr`` (a value the
grader asks the worker to build). Each side passes its own ``leaf`` (how to encode what is not
plain data) and ``tagged`` (how to decode a handle or an expr).

The worker imports this module too, so learner code may change it *there*: the client never
trusts what comes back, and decodes it with its own copy, bounded in depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MAX_DEPTH", "TAG", "decode", "encode"]

TAG = "__f0__"  # marks a JSON object that stands for something JSON cannot hold
MAX_DEPTH = 50  # containers nested deeper are leaves (encode) or refused (decode)


def encode(
    value: Any,
    leaf: Callable[[Any], Any],
    *,
    str_keys: bool = False,
    plain_dicts: tuple[type, ...] = (),
    depth: int = 0,
) -> Any:
    """Plain JSON for exact JSON types, lists, tuples and dicts (keys: str; ``str_keys``
    writes other keys as ``str(key)``); ``leaf(value)`` for anything else.

    ``plain_dicts``: dict subclasses sent as plain dicts (read with ``dict.items``, which no
    subclass can override), such as framework0's ``LoadedRecipe``."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            return {TAG: "float", "value": repr(value)}
        return value
    if depth < MAX_DEPTH:
        inner = depth + 1

        def again(item: Any) -> Any:
            return encode(item, leaf, str_keys=str_keys, plain_dicts=plain_dicts, depth=inner)

        if kind is list:
            return [again(v) for v in value]
        if kind is tuple:
            return {TAG: "tuple", "items": [again(v) for v in value]}
        if (kind is dict or kind in plain_dicts) and (
            str_keys or all(type(k) is str for k in dict.keys(value))
        ):
            out = {str(k): again(v) for k, v in dict.items(value)}
            return {TAG: "dict", "items": out} if dict.__contains__(value, TAG) else out
    return leaf(value)


def decode(value: Any, tagged: Callable[[dict[str, Any]], Any], depth: int = 0) -> Any:
    """The value ``encode`` wrote; ``tagged(obj)`` for a ``handle`` or ``expr`` object.
    Raises ``ValueError`` for containers nested deeper than ``MAX_DEPTH``."""
    if isinstance(value, (list, dict)) and depth > MAX_DEPTH:
        raise ValueError(f"a value nested more than {MAX_DEPTH} levels deep")
    inner = depth + 1
    if isinstance(value, list):
        return [decode(v, tagged, inner) for v in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            return {k: decode(v, tagged, inner) for k, v in value.items()}
        if tag == "tuple":
            return tuple(decode(v, tagged, inner) for v in value["items"])
        if tag == "dict":
            return {k: decode(v, tagged, inner) for k, v in value["items"].items()}
        if tag == "float":
            return float(value["value"])
        return tagged(value)
    return value
