"""Module 8's hidden suite, exercise 8.3: A hash-chained audit log. Instructor-only: never released
to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import hashlib
import json

from _support import a_attempt, a_raised, a_said, confirmed, settable_clock

from academy.bridge.client import expr
from academy.grading.cases import case, check, in_worker

A_GENESIS = "0" * 64
A_FIELDS = ("index", "timestamp", "actor", "action", "tenant_id", "key", "outcome")


def a_entry_hash(entry):
    body = {name: entry[name] for name in (*A_FIELDS, "prev_hash")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((entry["prev_hash"] + canonical).encode("utf-8")).hexdigest()


def a_rechain(entries):
    """What an attacker who knows the algorithm does: renumber and recompute every hash."""
    previous = A_GENESIS
    for i, entry in enumerate(entries):
        entry["index"], entry["prev_hash"] = i, previous
        entry["hash"] = previous = a_entry_hash(entry)
    return entries


A_DAY = [
    (1000.0, "alice", "set", "acme", "orders/total", "ok"),
    (1000.5, "bob", "get", "globex", "orders/total", "denied"),
    (1001.25, "admin", "rotate_keys", "acme", None, "ok"),
    (1002.0, "mallory", "get", "acme", "billing/iban", "denied"),
    (1003.0, "alice", "get", "acme", "billing/iban", "ok"),
]


def a_audit(learner, rows=A_DAY):
    clock = settable_clock(learner, rows[0][0])
    logger = learner.AuditLogger(clock=clock)
    returned = []
    for t, actor, action, tenant, key, outcome in rows:
        clock.now = t
        returned.append(logger.log(actor, action, tenant, key, outcome))
    return clock, logger, returned


def a_expected_entries(rows=A_DAY):
    entries, previous = [], A_GENESIS
    for i, row in enumerate(rows):
        entries.append(a_chained(i, row, previous))
        previous = entries[-1]["hash"]
    return entries


def a_chained(index, row, prev_hash):
    """A well-formed entry at ``index`` (``row`` as in A_DAY) chained to ``prev_hash``, with
    its hash: what a forger who knows the algorithm writes."""
    t, actor, action, tenant, key, outcome = row
    entry = {
        "index": index,
        "timestamp": t,
        "actor": actor,
        "action": action,
        "tenant_id": tenant,
        "key": key,
        "outcome": outcome,
        "prev_hash": prev_hash,
    }
    entry["hash"] = a_entry_hash(entry)
    return entry


def a_check_verify(learner, logger, cases):
    """Check verify() of each (what, entries, expected) case, in one call into the worker."""
    results = in_worker(
        learner,
        "lambda log, lists: [log.verify(entries) for entries in lists]",
        logger,
        [entries for _, entries, _ in cases],
    )
    for (what, _, want), got in zip(cases, results, strict=True):
        check(got == want, f"verify() of the log with {what} gave {got}; expected {want}")


A_OK = {"ok": True, "first_bad_index": None, "reason": None}


def a_bad(index, reason):
    return {"ok": False, "first_bad_index": index, "reason": reason}


# =========================================================================== exercise 8.3
@case(
    "8.3",
    0.75,
    "AuditLogger.log must append an entry with index, timestamp = clock(), the five values, "
    "prev_hash and hash = sha256(prev_hash + canonical JSON of the other eight fields), return "
    "a copy, move head_hash, and refuse bad arguments with ValueError; entry_hash keeps "
    "non-ASCII text as it is (ensure_ascii=False) and leaves the hash field out",
    rules=("8.3-a", "8.3-b", "8.3-c", "8.3-d", "8.3-e", "8.3-f", "8.3-g"),
)
def test_8_3_log(learner):
    empty = learner.AuditLogger(clock=settable_clock(learner))
    check(empty.head_hash.value() == A_GENESIS, "an empty log's head_hash must be GENESIS_HASH")
    check(empty.entries() == [] and empty.verify() == A_OK, "an empty log must verify")
    # entry_hash on its own: non-ASCII text, a "hash" field that must stay out of the body
    probe = {
        "hash": "not part of the body",
        "outcome": "ok",
        "key": "ключ/✓",
        "tenant_id": "acme",
        "action": "set",
        "actor": "Zoë",
        "timestamp": 1000.5,
        "index": 3,
        "prev_hash": "ab" * 32,
    }
    got = learner.AuditLogger.entry_hash(probe)
    check(
        got == a_entry_hash(probe),
        f"AuditLogger.entry_hash of an entry with actor 'Zoë' and key 'ключ/✓' gave {got!r}; "
        "expected sha256(prev_hash + json.dumps(the eight fields other than 'hash', "
        "sort_keys=True, separators=(',', ':'), ensure_ascii=False)) as a hex digest",
    )
    _clock, logger, returned = a_audit(learner)
    want = a_expected_entries()
    for i, (got, expected) in enumerate(zip(returned, want, strict=True)):
        check(isinstance(got, dict), f"log() returned a {type(got).__name__}, not a dict")
        check(
            set(got) == set(expected),
            f"entry {i} had the fields {sorted(got)}; expected {sorted(expected)}",
        )
        fields = {k: got[k] for k in A_FIELDS}
        check(
            fields == {k: expected[k] for k in A_FIELDS},
            f"entry {i} was {fields}; expected { ({k: expected[k] for k in A_FIELDS}) }",
        )
        check(
            got["prev_hash"] == expected["prev_hash"],
            f"entry {i}'s prev_hash must be the previous entry's hash (GENESIS_HASH for entry 0)",
        )
        check(
            got["hash"] == expected["hash"],
            f"entry {i}'s hash is not sha256(prev_hash + canonical JSON of the eight other "
            "fields: sorted keys, separators (',', ':'), ensure_ascii=False)",
        )
    check(logger.entries() == want, "entries() did not return the logged entries, in order")
    check(logger.head_hash.value() == want[-1]["hash"], "head_hash is not the newest entry's hash")
    check(logger.verify() == A_OK, f"verify() of an untouched log gave {logger.verify()}")
    first, second, edited = in_worker(
        learner,
        "lambda log: (lambda a, b: [a[0].__setitem__('actor', 'mallory'), "
        "b[1].__setitem__('outcome', 'ok'), [a[0], b[1], log.entries()]][-1])"
        "(log.entries(), log.entries())",
        logger,
    )
    confirmed(
        isinstance(first, dict)
        and isinstance(second, dict)
        and first.get("actor") == "mallory"
        and second.get("outcome") == "ok",
        "what entries() returned",
    )
    check(edited == want, "changing what entries() returned changed the log")
    returned = in_worker(
        learner,
        "lambda log: (lambda d: [d.__setitem__('actor', 'mallory'), d][-1])"
        "(log.log('carol', 'get', 'acme', 'k'))",
        logger,
    )
    confirmed(
        isinstance(returned, dict) and returned.get("actor") == "mallory",
        "the dict log() returned",
    )
    check(
        logger.entries()[-1]["actor"] == "carol" and logger.verify() == A_OK,
        "changing the dict log() returned changed the stored entry",
    )
    head = logger.head_hash.value()
    bad_calls = {
        "an empty actor": ("", "set", "acme"),
        "action None": ("alice", None, "acme"),
        "an empty tenant_id": ("alice", "set", ""),
        "key 5": ("alice", "set", "acme", 5),
        "an empty outcome": ("alice", "set", "acme", "k", ""),
    }
    for what, args in bad_calls.items():
        out = a_attempt(learner, logger, "log", *args)
        check(
            a_raised(out, "ValueError"), f"log() with {what} must raise ValueError; {a_said(out)}"
        )
    check(
        len(logger.entries()) == 6 and logger.head_hash.value() == head,
        "a refused log() call added an entry or moved the head",
    )


@case(
    "8.3",
    0.75,
    "verify must detect an edit of any field of any entry (timestamp, actor, action, "
    "tenant_id, key, outcome, index, prev_hash, hash), even when the edited entry's own hash "
    "was recomputed, and report the first bad index and the reason (an entry entry_hash cannot "
    "hash is 'malformed')",
    rules=("8.3-h", "8.3-i", "8.3-j", "8.3-k", "8.3-l", "8.3-m"),
    critical=True,
)
def test_8_3_edits(learner):
    _clock, logger, _ = a_audit(learner)
    original = logger.entries()
    cases = []
    for field, value in [
        ("timestamp", 1001.5),
        ("actor", "nobody"),
        ("action", "get"),
        ("tenant_id", "globex"),
        ("key", "orders/total"),
        ("outcome", "denied"),
    ]:
        entries = [dict(e) for e in original]
        entries[2][field] = value
        cases.append((f"entry 2's {field} changed to {value!r}", entries, a_bad(2, "hash")))
    for field, value, want in [
        ("index", 7, a_bad(2, "index")),
        ("prev_hash", A_GENESIS, a_bad(2, "prev_hash")),
        ("prev_hash", "f" * 64, a_bad(2, "prev_hash")),
        ("hash", "f" * 64, a_bad(2, "hash")),
    ]:
        entries = [dict(e) for e in original]
        entries[2][field] = value
        cases.append((f"entry 2's {field} changed", entries, want))
    entries = [dict(e) for e in original]
    entries[2]["actor"] = "nobody"
    entries[2]["hash"] = a_entry_hash(entries[2])
    cases.append(
        ("entry 2's actor changed and its hash recomputed", entries, a_bad(3, "prev_hash"))
    )
    entries = [dict(e) for e in original]
    del entries[1]["outcome"]
    cases.append(("entry 1 without its outcome field", entries, a_bad(1, "malformed")))
    entries = [dict(e) for e in original]
    entries[1]["signed_by"] = "alice"
    cases.append(("entry 1 with an extra field", entries, a_bad(1, "malformed")))
    entries = [dict(e) for e in original]
    entries[1] = "an entry"
    cases.append(("entry 1 replaced by a str", entries, a_bad(1, "malformed")))
    a_check_verify(learner, logger, cases)
    check(
        logger.verify(original) == A_OK and logger.verify() == A_OK,
        "verify() of the untouched entries failed after checking tampered copies",
    )
    unhashable = [dict(e) for e in original]
    unhashable[1]["key"] = expr("{1, 2}")  # a Python set: json.dumps raises TypeError
    out = a_attempt(learner, logger, "verify", unhashable)
    check(
        out == {"returned": a_bad(1, "malformed")},
        "verify() of a list whose entry 1 holds a value entry_hash cannot hash (a Python set, "
        f"json.dumps raises TypeError) must give {a_bad(1, 'malformed')}; {a_said(out)}",
    )


@case(
    "8.3",
    0.5,
    "verify must detect deleted, inserted and reordered entries and report the first position "
    "that no longer fits (index checked before prev_hash and hash)",
    rules=("8.3-i", "8.3-k", "8.3-l"),
    critical=True,
)
def test_8_3_structure(learner):
    _clock, logger, _ = a_audit(learner)
    e = logger.entries()
    forged = a_chained(2, (1001.0, "mallory", "grant", "acme", None, "ok"), e[1]["hash"])
    cases = [
        ("entry 2 deleted", e[:2] + e[3:], a_bad(2, "index")),
        ("entry 0 deleted", e[1:], a_bad(0, "index")),
        ("entries 1 and 2 swapped", [e[0], e[2], e[1], e[3], e[4]], a_bad(1, "index")),
        ("the list reversed", e[::-1], a_bad(0, "index")),
        ("a copy of entry 1 inserted after it", e[:2] + [e[1]] + e[2:], a_bad(2, "index")),
        ("a well-chained forged entry inserted at 2", e[:2] + [forged] + e[2:], a_bad(3, "index")),
    ]
    a_check_verify(learner, logger, cases)


@case(
    "8.3",
    0.5,
    "verify must compare a valid chain with the logger's head: deleting the newest entries, "
    "appending entries or rewriting the whole chain must fail with reason 'head'",
    rules=("8.3-n", "8.3-o", "8.3-p"),
    critical=True,
)
def test_8_3_head(learner):
    clock, logger, _ = a_audit(learner)
    e = logger.entries()
    appended = a_chained(5, (1004.0, "mallory", "get", "acme", "billing/iban", "ok"), e[4]["hash"])
    cases = [
        ("the newest entry deleted", e[:-1], a_bad(4, "head")),
        ("the two newest entries deleted", e[:-2], a_bad(3, "head")),
        ("every entry deleted", [], a_bad(0, "head")),
        ("a well-chained entry appended", e + [appended], a_bad(5, "head")),
        (
            "entry 3 deleted and the chain rewritten",
            a_rechain([dict(x) for x in e[:3] + e[4:]]),
            a_bad(4, "head"),
        ),
        (
            "entry 0's actor edited and the chain rewritten",
            a_rechain([dict(x, actor="nobody") if x["index"] == 0 else dict(x) for x in e]),
            a_bad(5, "head"),
        ),
    ]
    a_check_verify(learner, logger, cases)
    clock.now = 1010.0
    logger.log("carol", "get", "acme", "orders/total")
    got = logger.verify(e)
    check(
        got == a_bad(5, "head"),
        f"after a sixth entry was logged, verify() of the first five gave {got}; expected "
        f"{a_bad(5, 'head')}",
    )
    check(logger.verify() == A_OK, "the logger's own entries stopped verifying")


@case(
    "8.3",
    0.5,
    "AuditLogger.query must return copies of the entries matching every filter given "
    "(tenant_id, actor, key, outcome; None means any), oldest first",
    rules=("8.3-q",),
)
def test_8_3_query(learner):
    rows = A_DAY + [
        (1004.0, "bob", "set", "globex", "orders/total", "ok"),
        (1005.0, "alice", "set", "acme", "orders/total", "denied"),
    ]
    _clock, logger, _ = a_audit(learner, rows)
    every = logger.entries()
    probes = [
        ({}, [0, 1, 2, 3, 4, 5, 6]),
        ({"tenant_id": "acme"}, [0, 2, 3, 4, 6]),
        ({"actor": "alice"}, [0, 4, 6]),
        ({"key": "billing/iban"}, [3, 4]),
        ({"outcome": "denied"}, [1, 3, 6]),
        ({"actor": "alice", "outcome": "denied"}, [6]),
        ({"tenant_id": "acme", "key": "orders/total", "outcome": "ok"}, [0]),
        ({"tenant_id": "globex", "actor": "bob", "key": "orders/total", "outcome": "ok"}, [5]),
        ({"tenant_id": "initech"}, []),
        ({"actor": "bob", "tenant_id": "acme"}, []),
    ]
    for filters, indexes in probes:
        got = logger.query(**filters)
        check(
            got == [every[i] for i in indexes],
            f"query({', '.join(f'{k}={v!r}' for k, v in filters.items())}) gave the entries "
            f"{[g.get('index') for g in got] if isinstance(got, list) else got}; expected "
            f"{indexes}",
        )
    first, after = in_worker(
        learner,
        "lambda log: (lambda q: [q[0].__setitem__('outcome', 'ok'), "
        "[q[0], log.query(actor='bob')]][-1])(log.query(actor='bob'))",
        logger,
    )
    confirmed(
        isinstance(first, dict) and first.get("outcome") == "ok", "an entry that query() returned"
    )
    check(
        after == [every[1], every[5]]
        and logger.verify() == {"ok": True, "first_bad_index": None, "reason": None},
        "changing an entry that query() returned changed the log",
    )
