"""What a grading task needs from the course, as bytes: workers share no filesystem with it.

A bundle is a plain ``dict`` of relative path -> file bytes (regular files only: a symbolic
link, a device or a FIFO is never read or sent), small enough to travel with a Dask task (the
instructor's side submits it once as a Dask task of its own, see ``tasks.bundle_value``).
``materialise`` writes one into a fresh folder on the worker, refusing paths that would leave
it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath

from academy.errors import AcademyError
from academy.manifest import Course, Module

__all__ = [
    "MAX_STUDENT_BYTES",
    "BundleError",
    "check_bundle",
    "course_bundle",
    "digest",
    "folder_files",
    "materialise",
]

CONFIG_FILES = ("course.yaml", "jupyter_config.py", "nbgrader_config.py")
SKIP = {"__pycache__", ".ipynb_checkpoints", ".hypothesis", ".git"}
MAX_STUDENT_BYTES = 64 * 1024 * 1024  # one student's submitted folder, all files together


class BundleError(AcademyError, ValueError):
    """A file that cannot travel (too big, or a path that would leave its folder)."""


def folder_files(folder: Path, prefix: str, limit: int = MAX_STUDENT_BYTES) -> dict[str, bytes]:
    """Every regular file under ``folder`` (links and special files skipped, never followed)."""
    files: dict[str, bytes] = {}
    total = 0
    if not folder.is_dir():
        return files
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or name.endswith(".pyc"):
                continue
            total += info.st_size
            if total > limit:
                raise BundleError(f"{folder} holds more than {limit // 2**20} MiB of files")
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as handle:
                data = handle.read(limit + 1)
            rel = path.relative_to(folder).as_posix()
            files[f"{prefix}/{rel}" if prefix else rel] = data
    return files


def course_bundle(course: Course, module: Module, gradebook: bool = False) -> dict[str, bytes]:
    """The course files one module's grading reads: configuration, course.yaml, the module's
    hidden suite (its file, or every file of its folder: ``Course.suite_files``) and its source
    folder (``curriculum/<module>/``: nbgrader copies its data files into every graded folder,
    and module 8's suite reads the reference from it); with ``gradebook``, a copy of
    ``gradebook.db`` (``nbgrader autograde`` needs the released cells)."""
    root = course.root
    files = {name: (root / name).read_bytes() for name in CONFIG_FILES if (root / name).is_file()}
    suite = course.suite_files(module)
    if not suite:
        raise BundleError(f"{module.id}: the hidden suite {module.suite} does not exist")
    for path in suite:
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            raise BundleError(f"{module.id}: the hidden suite is outside {root}") from None
        files[name] = path.read_bytes()
    files.update(folder_files(root / "curriculum" / module.id, f"curriculum/{module.id}"))
    if gradebook:
        files["gradebook.db"] = (root / "gradebook.db").read_bytes()
    return files


def digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def check_bundle(files: dict[str, bytes]) -> None:
    for name in files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name:
            raise BundleError(f"refusing to write {name!r}: not a plain relative path")


def materialise(files: dict[str, bytes], dest: Path) -> Path:
    """Write ``files`` under ``dest`` (created); returns ``dest``."""
    check_bundle(files)
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return dest
