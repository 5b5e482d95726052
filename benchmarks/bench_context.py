"""Measure what Context costs against the plainest code that does the same job.

Each comparison runs both sides in the same process, interleaved round by round, and
reports the median of the per-round ratios, so a noisy machine slows both sides alike.

    python benchmarks/bench_context.py           # full run
    python benchmarks/bench_context.py --quick   # smaller sizes, fewer rounds

Prints one table row per goal and exits 1 if any goal is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framework0.context import Context  # noqa: E402


@dataclass
class Row:
    name: str
    measured: str
    baseline: str
    ratio: float | None
    goal: str
    ok: bool
    note: str = ""


class NaiveContext:
    """The baseline: a dict, a list of history dicts stamped with time.time(), a dirty set."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.dirty: set[str] = set()

    def set(self, key: str, value: Any, who: str | None = None) -> None:
        before = self.data.get(key)
        self.data[key] = value
        self.history.append(
            {"timestamp": time.time(), "step": who, "key": key, "before": before, "after": value}
        )
        self.dirty.add(key)


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(rounds: int, subject: Callable[[], Any], baseline: Callable[[], Any]) -> tuple:
    """Run both sides ``rounds`` times, alternating which goes first; return medians."""
    subject_times, baseline_times, ratios = [], [], []
    for i in range(rounds):
        if i % 2:
            b = timed(baseline)
            s = timed(subject)
        else:
            s = timed(subject)
            b = timed(baseline)
        subject_times.append(s)
        baseline_times.append(b)
        ratios.append(s / b)
    return (
        statistics.median(subject_times),
        statistics.median(baseline_times),
        statistics.median(ratios),
    )


def fmt_time(seconds: float, per: int = 1) -> str:
    value = seconds / per
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def sample_value(i: int) -> Any:
    kind = i % 5
    if kind == 0:
        return i
    if kind == 1:
        return i / 7
    if kind == 2:
        return f"value-{i}"
    if kind == 3:
        return {"id": i, "ok": i % 2 == 0, "tags": ["a", "b"]}
    return [i, None, "x"]


# ---------------------------------------------------------------------------- measurements


def bench_set(n: int, rounds: int) -> Row:
    keys = [f"step.k{i % 1000}" for i in range(n)]
    values = list(range(n))

    def subject() -> None:
        ctx = Context()
        put = ctx.set
        for key, value in zip(keys, values, strict=True):
            put(key, value, "bench")

    def baseline() -> None:
        naive = NaiveContext()
        put = naive.set
        for key, value in zip(keys, values, strict=True):
            put(key, value, "bench")

    s, b, ratio = paired(rounds, subject, baseline)
    return Row(
        "(a) set() of scalars",
        fmt_time(s, n) + "/set",
        fmt_time(b, n) + "/set",
        ratio,
        "<= 2x",
        ratio <= 2.0,
        "baseline: dict + history list + dirty set",
    )


def bench_get(n: int, rounds: int) -> Row:
    ctx = Context()
    plain: dict[str, Any] = {}
    for i in range(1000):
        ctx.set(f"k{i}", i)
        plain[f"k{i}"] = i
    keys = [f"k{i % 1200}" for i in range(n)]  # one read in six misses

    def dict_get(key: str, default: Any = None) -> Any:
        return plain.get(key, default)

    def subject() -> None:
        get = ctx.get
        for key in keys:
            get(key)

    def baseline() -> None:
        get = dict_get
        for key in keys:
            get(key)

    s, b, ratio = paired(rounds, subject, baseline)
    return Row(
        "(b) get() of scalars",
        fmt_time(s, n) + "/get",
        fmt_time(b, n) + "/get",
        ratio,
        "<= 2x",
        ratio <= 2.0,
        "baseline: def f(k, d=None): return d.get(k)",
    )


def bench_to_json(n: int, rounds: int) -> Row:
    data = {f"key.{i:06d}": sample_value(i) for i in range(n)}
    ctx = Context.from_dict(data)
    assert json.loads(ctx.to_json()) == data
    s, b, ratio = paired(rounds, ctx.to_json, lambda: json.dumps(data))
    return Row(
        f"(c) to_json() of {n // 1000}k keys",
        fmt_time(s),
        fmt_time(b),
        ratio,
        "<= 1.2x",
        ratio <= 1.2,
        "baseline: json.dumps(same dict)",
    )


def rss_bytes() -> int:
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process().memory_info().rss


def bench_rss(n: int) -> Row:
    step = n // 10
    ctx = Context(max_history=1000)
    samples: list[tuple[int, int]] = []
    put = ctx.set
    for i in range(n):
        put(f"metrics.k{i % 1000}", i, "bench")
        if (i + 1) % step == 0:
            samples.append((i + 1, rss_bytes()))
    assert len(ctx.get_history()) == 1000
    mib = 1024 * 1024
    print("    RSS after  " + "  ".join(f"{c // 1000}k:{r / mib:.1f}" for c, r in samples) + " MiB")
    growth = samples[-1][1] - samples[1][1]
    return Row(
        f"(d) RSS growth {samples[1][0] // 1000}k -> {n // 1000}k sets",
        f"{growth / mib:+.2f} MiB",
        f"{samples[1][1] / mib:.1f} MiB",
        growth / samples[1][1],
        "<= +1 MiB",
        growth <= mib,
        "max_history=1000, 1000 keys; ratio = growth / RSS",
    )


def bench_flush(n: int, rounds: int) -> list[Row]:
    try:
        from framework0.persistence import Persistence
    except ImportError as exc:
        note = f"framework0.persistence unavailable: {exc}"
        return [Row("(e) delta flush", "-", "-", None, "<= 5%", False, note)]
    root = Path(tempfile.mkdtemp(prefix="bench_context_"))
    try:
        ctx = Context.from_dict({f"key.{i:06d}": sample_value(i) for i in range(n)})
        store = Persistence(root, flush_interval_sec=3600, max_history=1000, snapshot_every=10**6)
        store.flush(ctx, full=True)  # start the chain: later flushes are deltas
        delta_times, full_times, ratios = [], [], []
        delta_bytes = full_bytes = 0
        for r in range(rounds):
            for j in range(10):
                ctx.set(f"key.{(r * 7919 + j * 104729) % n:06d}", {"round": r, "j": j})
            gc.collect()
            start = time.perf_counter()
            delta = store.flush(ctx)
            d = time.perf_counter() - start
            ctx.set("key.000000", r)
            gc.collect()
            start = time.perf_counter()
            full = store.flush(ctx, full=True)
            f = time.perf_counter() - start
            assert delta is not None and delta.name.startswith("delta_"), delta
            assert full is not None and full.name.startswith("snapshot_"), full
            delta_bytes, full_bytes = delta.stat().st_size, full.stat().st_size
            delta_times.append(d)
            full_times.append(f)
            ratios.append(d / f)
        ratio = statistics.median(ratios)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    size_ratio = delta_bytes / full_bytes
    return [
        Row(
            f"(e) delta flush time, 10 of {n // 1000}k keys",
            fmt_time(statistics.median(delta_times)),
            fmt_time(statistics.median(full_times)),
            ratio,
            "<= 5%",
            ratio <= 0.05,
            "baseline: flush(ctx, full=True); both fsync",
        ),
        Row(
            f"(e) delta flush bytes, 10 of {n // 1000}k keys",
            f"{delta_bytes} B",
            f"{full_bytes} B",
            size_ratio,
            "<= 5%",
            size_ratio <= 0.05,
            "",
        ),
    ]


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    args = parser.parse_args(argv)
    quick = args.quick
    rounds = 5 if quick else 9
    print(
        f"Python {sys.version.split()[0]}, {'quick' if quick else 'full'} run, "
        f"{rounds} interleaved rounds, medians"
    )
    rows = [
        bench_set(50_000 if quick else 200_000, rounds),
        bench_get(100_000 if quick else 500_000, rounds),
        bench_to_json(100_000, rounds),
        bench_rss(200_000 if quick else 1_000_000),
        *bench_flush(100_000, rounds),
    ]
    headers = ("measurement", "Context", "baseline", "ratio", "goal", "result")
    table = [
        (
            r.name,
            r.measured,
            r.baseline,
            "-" if r.ratio is None else f"{r.ratio:.3f}",
            r.goal,
            "PASS" if r.ok else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *table, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))

    print(line(headers))
    print(line(tuple("-" * w for w in widths)))
    for cells, row in zip(table, rows, strict=True):
        print(line(cells) + (f"  ({row.note})" if row.note else ""))
    failed = [r.name for r in rows if not r.ok]
    print("FAILED: " + ", ".join(failed) if failed else "all goals met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
