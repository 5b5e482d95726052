"""Touch student folders without following anything a learner put there.

Student folders (``submitted/``, ``autograded/``) hold what learners made: besides their
notebooks, possibly symbolic links, FIFOs, sockets, device nodes or huge sparse files. nbgrader
0.9.6 copies and chmods those folders with ``shutil.copy`` and ``os.chmod``
(``converters/base.py``: ``init_assignment``, ``set_permissions``), which follow links: a link
to the hidden suite or the gradebook made ``generate_feedback`` hand the target to the learner
and the permission step chmod it. Two defences, each at the root of its path:

* the learner's kernel never runs in a student folder at all: ``ExecuteWithinLimits`` gives
  it a scratch copy made by :func:`copy_regular_files` and throws the copy away;
* :func:`protect_student_folders` (called from ``jupyter_config.py``) makes nbgrader's
  converter module copy and chmod regular files only, opened with ``O_NOFOLLOW``, and refuse
  to read a notebook that is not a regular file. Everything else is left to nbgrader.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from typing import Any

from academy.errors import NotARegularFile

__all__ = [
    "MAX_COPY_BYTES",
    "NotARegularFile",
    "chmod_regular",
    "copy_regular_file",
    "copy_regular_files",
    "protect_student_folders",
]

MAX_COPY_BYTES = 64 * 2**20  # the kernel's own file-size cap; larger files are not copied
log = logging.getLogger(__name__)


def _open_regular(path: str, flags: int = os.O_RDONLY) -> int:
    """Open ``path`` without following a final link or blocking on a FIFO; regular files only."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(f"{path} is not a regular file")
    return fd


def copy_regular_file(src: str, dst: str, max_bytes: int = MAX_COPY_BYTES) -> str:
    """Copy ``src`` to ``dst`` when both are (or will be) plain files; never follow a link."""
    fd = _open_regular(src)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise NotARegularFile(f"{src} is {size:,} bytes, more than {max_bytes:,}")
        if os.path.isdir(dst):
            dst = os.path.join(dst, os.path.basename(src))
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(out).st_mode):
                raise NotARegularFile(f"{dst} is not a regular file")
            copied = 0
            while chunk := os.read(fd, 1 << 20):
                copied += len(chunk)
                if copied > max_bytes:  # it grew while we read it
                    raise NotARegularFile(f"{src} grew past {max_bytes:,} bytes")
                os.write(out, chunk)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    return dst


def copy_regular_files(source: str, dest: str, max_bytes: int = MAX_COPY_BYTES) -> list[str]:
    """Copy the regular files under ``source`` into ``dest``; return what was left out.

    Links (to files or folders), FIFOs, sockets, devices and files above ``max_bytes`` are
    left out; folders are recreated, never followed.
    """
    skipped: list[str] = []
    if not source or not os.path.isdir(source) or os.path.islink(source):
        return skipped
    for folder, subfolders, files in os.walk(source, followlinks=False):
        rel = os.path.relpath(folder, source)
        for name in list(subfolders):
            if os.path.islink(os.path.join(folder, name)):
                subfolders.remove(name)
                skipped.append(os.path.normpath(os.path.join(rel, name)))
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for name in files:
            try:
                copy_regular_file(
                    os.path.join(folder, name), os.path.join(dest, rel, name), max_bytes
                )
            except OSError:
                skipped.append(os.path.normpath(os.path.join(rel, name)))
    return skipped


def chmod_regular(path: str, mode: int) -> None:
    """``os.chmod`` for a regular file or a folder, never through a link (others: left as is)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    elif stat.S_ISREG(info.st_mode):
        fd = _open_regular(path)
    else:
        log.warning("not changing the mode of %s: not a regular file", path)
        return
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


class _Shim:
    """A module seen through a few replaced functions; everything else is the module's own."""

    def __init__(self, module: Any, **replaced: Any) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _copy_or_skip(src: str, dst: str, *args: Any, **kwargs: Any) -> str | None:
    try:
        return copy_regular_file(src, dst)
    except OSError as exc:
        log.warning("not copied from a student folder: %s", exc)
        return None


def protect_student_folders() -> None:
    """Make nbgrader's converters copy and chmod regular files only, and read only real notebooks.

    Idempotent. It replaces, inside ``nbgrader.converters.base`` only, ``shutil.copy`` (used
    to copy a student's files between ``submitted/``, ``autograded/`` and ``feedback/``) and
    ``os.chmod`` (the permission step), and refuses a notebook path that is not a regular
    file, so that student fails alone and the run goes on.
    """
    from nbgrader.converters import base

    if getattr(base, "_f0_protected", False):
        return
    base.shutil = _Shim(shutil, copy=_copy_or_skip)
    base.os = _Shim(os, chmod=chmod_regular)
    original = base.BaseConverter.init_single_notebook_resources

    def init_single_notebook_resources(self: Any, notebook_filename: str) -> Any:
        if not stat.S_ISREG(os.lstat(notebook_filename).st_mode):
            raise NotARegularFile(
                f"{notebook_filename} is not a regular file (a link?); it was not read"
            )
        return original(self, notebook_filename)

    base.BaseConverter.init_single_notebook_resources = init_single_notebook_resources
    base._f0_protected = True
