"""Crash-safe persistence of a Context: full snapshots plus small delta files.

A state directory holds numbered files, each one JSON object::

    snapshot_000001.json  {"format": 1, "kind": "snapshot", "sequence": 1, "version": 7,
                           "written_at": 1700000000.0, "data": {...every key...}}
    delta_000002.json     {..., "kind": "delta", "sequence": 2, "data": {...changed keys...}}

The durable state is the newest snapshot with every later delta applied in order. Deltas
keep frequent flushes cheap; a periodic snapshot keeps ``load`` fast and lets old files go.

Why the files can be trusted after a crash: each one is written to a temporary file in the
same directory, fsynced, renamed over its final name with ``os.replace`` (atomic) and the
directory is fsynced, so a file is either absent or complete. A killed writer can leave
temporary files behind; they are removed when a ``Persistence`` opens the directory. A file
that is still unreadable raises ``CorruptStateError`` naming it: a damaged state is never
replaced by a silently empty one.

One ``Persistence`` writes a directory at a time, and it must be the only consumer of the
context's dirty keys (``pop_dirty_items``), or its deltas would miss changes.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from framework0._json import reject_constant
from framework0.context import Context
from framework0.errors import ContextError, CorruptStateError, PersistenceError
from framework0.logger import get_logger

__all__ = ["Persistence", "atomic_write", "clean_temp_files"]

_FORMAT = 1
_NAME = re.compile(r"^(snapshot|delta)_(\d{6,})\.json$")
_KINDS = ("snapshot", "delta")
_log = get_logger("framework0.persistence")
_in_flight: set[str] = set()  # temporary files this process is writing right now
_in_flight_lock = threading.Lock()


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry lives in the directory's own data."""
    if os.name != "posix":  # Windows cannot open a directory; NTFS journals renames
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a crash leaves the old file or the new, never half.

    Temporary names are ``.<name>.<pid>.<random>.tmp`` so start-up cleanup can tell a dead
    writer's leftovers from a live writer's file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with _in_flight_lock:
        _in_flight.add(str(tmp))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        with _in_flight_lock:
            _in_flight.discard(str(tmp))


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_temp_files(directory: Path) -> list[Path]:
    """Remove temporary files left by killed writers; keep those a live writer is using."""
    removed = []
    for entry in directory.iterdir():
        name = entry.name
        if not (name.endswith(".tmp") or name.startswith(".tmp")) or not entry.is_file():
            continue
        with _in_flight_lock:
            if str(entry) in _in_flight:
                continue
        parts = name.split(".")
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except FileNotFoundError:
            pass
    if removed:
        _log.info("removed %d stale temporary file(s) from %s", len(removed), directory)
    return removed


class Persistence:
    """Save a Context to ``persist_dir`` as snapshots and deltas, and load it back.

    ``flush`` writes only the keys set since the last flush (a delta); every
    ``snapshot_every`` deltas it writes a full snapshot instead. ``max_history`` bounds the
    number of files kept: whole old snapshot+delta chains are removed, never the newest
    snapshot or the deltas after it (snapshots come often enough that the newest chain
    fits). ``flush`` and ``load`` are thread-safe.
    """

    def __init__(
        self,
        persist_dir: str | os.PathLike[str],
        flush_interval_sec: float = 10,
        max_history: int = 100,
        snapshot_every: int = 20,
    ) -> None:
        if not isinstance(flush_interval_sec, (int, float)) or not flush_interval_sec > 0:
            raise ValueError(f"flush_interval_sec must be > 0, got {flush_interval_sec!r}")
        for name, value in (("max_history", max_history), ("snapshot_every", snapshot_every)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.dir = Path(persist_dir)
        self.flush_interval_sec = float(flush_interval_sec)
        self.max_history = max_history
        self.snapshot_every = snapshot_every
        self.last_error: BaseException | None = None
        """The last error of the background flush thread (also raised by ``stop``)."""
        self.loaded_version = 0
        """The version recorded in the state the last ``load`` returned."""
        self._lock = threading.Lock()
        self._chain: weakref.ref[Context] | None = None  # the context the deltas describe
        self._chain_base = 0  # added to ctx.version so versions keep growing across restarts
        self._need_snapshot = False  # a failed write lost dirty keys: only a snapshot is safe
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._bg_ctx: Context | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            clean_temp_files(self.dir)
            self._files = self._scan()
            self._prune()  # a writer killed between a write and its pruning left one extra
        except OSError as exc:
            raise PersistenceError(f"cannot open state directory {self.dir}: {exc}") from exc
        self._next_seq = self._files[-1][0] + 1 if self._files else 1
        last_snap = self._newest_snapshot_index()
        self._deltas_since_snapshot = len(self._files) - 1 - last_snap if last_snap >= 0 else 0

    # ------------------------------------------------------------------ writing
    def flush(self, ctx: Context, full: bool = False) -> Path | None:
        """Write what changed in ``ctx`` since the last flush; return the new file or None.

        A full snapshot is written when ``full`` is true, when ``snapshot_every`` deltas
        have been written since the last one, or when ``ctx`` is not the context the
        directory's deltas describe (the first flush of a context that ``load`` did not
        return, or any flush after a failed write): a delta on top of another state
        would mix two states.
        """
        if not isinstance(ctx, Context):
            raise TypeError(f"flush() needs a Context, got {type(ctx).__name__}")
        with self._lock:
            chained = self._chain is not None and self._chain() is ctx
            if full or not chained or self._need_snapshot or self._newest_snapshot_index() < 0:
                if not full and not self._files and len(ctx) == 0:
                    return None  # nothing to save, and load() already gives an empty context
                return self._write_snapshot(ctx)
            version, items = ctx.pop_dirty_items()
            if not items:
                return None
            if self._deltas_since_snapshot >= min(self.snapshot_every, self.max_history - 1):
                return self._write_snapshot(ctx)  # covers ``items`` and anything newer
            path = self._write("delta", self._chain_base + version, items)
            self._deltas_since_snapshot += 1
            return path

    def _write_snapshot(self, ctx: Context) -> Path:
        chained = self._chain is not None and self._chain() is ctx
        base = self._chain_base if chained else 0
        version, data = ctx.take_snapshot()
        path = self._write("snapshot", base + version, data)
        self._chain, self._chain_base = weakref.ref(ctx), base
        self._need_snapshot = False
        self._deltas_since_snapshot = 0
        return path

    def _write(self, kind: str, version: int, data: dict[str, Any]) -> Path:
        seq = self._next_seq
        self._next_seq += 1  # never reuse a number, even when the write fails
        path = self.dir / f"{kind}_{seq:06d}.json"
        record = {
            "format": _FORMAT,
            "kind": kind,
            "sequence": seq,
            "version": version,
            "written_at": time.time(),
            "data": data,
        }
        try:
            atomic_write(path, json.dumps(record, ensure_ascii=False).encode("utf-8"))
        except OSError as exc:
            self._need_snapshot = True  # the dirty keys taken for this file are gone
            raise PersistenceError(f"cannot write {path}: {exc}") from exc
        self._files.append((seq, kind, path))
        self._prune()
        return path

    def _prune(self) -> None:
        """Drop the oldest whole chains while more than ``max_history`` files are kept."""
        while len(self._files) > self.max_history:
            newest = self._newest_snapshot_index()
            if newest <= 0:
                return
            end = next(i for i in range(1, newest + 1) if self._files[i][1] == "snapshot")
            for i, (_, _, path) in enumerate(self._files[:end]):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:  # old files only cost space: keep the flush going
                    _log.warning("cannot remove old state file %s: %s", path, exc)
                    del self._files[:i]
                    return
            del self._files[:end]

    def _newest_snapshot_index(self) -> int:
        for i in range(len(self._files) - 1, -1, -1):
            if self._files[i][1] == "snapshot":
                return i
        return -1

    def _scan(self) -> list[tuple[int, str, Path]]:
        files = []
        for entry in self.dir.iterdir():
            match = _NAME.match(entry.name)
            if match:
                files.append((int(match.group(2)), match.group(1), entry))
        files.sort()
        return files

    # ------------------------------------------------------------------ reading
    def load(self, max_history: int | None = None) -> Context:
        """Return a new Context holding the newest durable state (empty if there is none).

        The returned context has no dirty keys and no history (``max_history`` bounds the
        history it will keep). If this ``Persistence``
        has not written yet, later flushes of that context are deltas on top of the state
        it was loaded from.
        """
        with self._lock:
            try:
                files = self._scan()
            except OSError as exc:
                raise PersistenceError(f"cannot list {self.dir}: {exc}") from exc
            snaps = [i for i, f in enumerate(files) if f[1] == "snapshot"]
            if not snaps:
                if files:
                    raise CorruptStateError(
                        f"{files[0][2]}: delta file without any snapshot before it in {self.dir}"
                    )
                ctx, version = Context(max_history=max_history), 0
            else:
                chain = files[snaps[-1] :]
                data: dict[str, Any] = {}
                version = 0
                expected_seq = chain[0][0]
                for seq, kind, path in chain:
                    if seq != expected_seq:
                        raise CorruptStateError(
                            f"{path}: file sequence {expected_seq} is missing before it"
                        )
                    expected_seq += 1
                    record = self._read(path, seq, kind)
                    data.update(record["data"])
                    version = record["version"]
                try:
                    ctx = Context.from_dict(data, max_history=max_history)
                except ContextError as exc:
                    raise CorruptStateError(f"{self.dir}: saved state is invalid: {exc}") from exc
            self.loaded_version = version
            if self._chain is None or self._chain() is None:
                self._chain, self._chain_base = weakref.ref(ctx), version
            return ctx

    @staticmethod
    def _read(path: Path, seq: int, kind: str) -> dict[str, Any]:
        """Read and check one file; anything unexpected names the file."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PersistenceError(f"cannot read {path}: {exc}") from exc
        try:
            record = json.loads(raw.decode("utf-8"), parse_constant=reject_constant)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise CorruptStateError(f"{path}: corrupt or truncated state file: {exc}") from exc
        problem = None
        if not isinstance(record, dict):
            problem = "is not a JSON object"
        elif record.get("format") != _FORMAT:
            problem = f"has unknown format {record.get('format')!r}"
        elif record.get("kind") != kind or record.get("sequence") != seq:
            problem = "does not match its file name (kind or sequence)"
        elif type(record.get("version")) is not int:
            problem = "has no integer 'version'"
        elif not isinstance(record.get("data"), dict):
            problem = "has no 'data' object"
        elif not all(record["data"]):
            problem = "has an empty key in 'data'"
        if problem or not isinstance(record, dict):  # (a non-dict always has a problem)
            raise CorruptStateError(f"{path}: corrupt state file: it {problem}")
        return record

    # --------------------------------------------------------------- background
    def start_background_flush(self, ctx: Context) -> None:
        """Flush ``ctx`` every ``flush_interval_sec`` seconds in a daemon thread.

        A failing flush is logged and kept in ``last_error``; the thread keeps trying
        (a later snapshot repairs the loss) and ``stop_background_flush`` raises it.
        """
        if self._thread is not None and self._thread.is_alive():
            raise PersistenceError(f"a background flush of {self.dir} is already running")
        self.last_error = None
        self._stop = threading.Event()
        self._bg_ctx = ctx
        self._thread = threading.Thread(
            target=self._loop, args=(ctx, self._stop), name=f"persistence:{self.dir}", daemon=True
        )
        self._thread.start()

    def _loop(self, ctx: Context, stop: threading.Event) -> None:
        while not stop.wait(self.flush_interval_sec):
            try:
                self.flush(ctx)
            except Exception as exc:
                self.last_error = exc
                _log.error("background flush to %s failed: %s", self.dir, exc)

    def stop_background_flush(self) -> Path | None:
        """Stop the thread, then flush one last time so nothing set before is lost.

        Returns the file the final flush wrote (or None); raises ``PersistenceError`` if
        any background flush failed, even when the final flush repaired the state.
        """
        thread, ctx = self._thread, self._bg_ctx
        if thread is None or ctx is None:
            return None
        self._stop.set()
        thread.join()
        self._thread = self._bg_ctx = None
        path = self.flush(ctx)
        if self.last_error is not None:
            raise PersistenceError(
                f"background flush to {self.dir} failed: {self.last_error}"
            ) from self.last_error
        return path
