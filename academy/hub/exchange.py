"""nbgrader's collect, hardened for a shared exchange where learners are not trusted.

Stock ``nbgrader collect`` (``nbgrader/exchange/default/collect.py``, 0.9.6) copies each
submission with ``shutil.copytree``, which follows symbolic links: a learner who submits
``module1.ipynb -> /home/<instructor>/framework0-academy/curriculum/module1/module1.ipynb``
(a file the learner cannot read) gets the instructor's own notebook collected, graded and
rendered into *their* feedback. It also believes the user name in the submission's folder
name (``check_owner`` only warns), so one learner can replace another's submission.

:class:`SafeCollect` (``c.ExchangeFactory.collect``) keeps nbgrader's behaviour (latest
submission, ``--update``, ``--before-duedate``, timestamps) and changes what it trusts:

* a submission counts only when it is a real folder owned by the account it names;
  others are skipped with an error before the latest one is chosen;
* it copies regular files owned by that account, opened with ``O_NOFOLLOW``; links, FIFOs,
  devices, files of other owners and files above ``CourseDirectory.max_file_size`` are
  left out and logged.
"""

from __future__ import annotations

import fnmatch
import os
import pwd
import stat
from collections.abc import Sequence
from datetime import datetime

from nbgrader.exchange.default.collect import ExchangeCollect

from academy.errors import NotARegularFile
from academy.grading.nofollow import copy_regular_file

__all__ = ["SafeCollect", "copy_owned_tree"]


def _owner_uid(username: str) -> int | None:
    try:
        return pwd.getpwnam(username).pw_uid
    except KeyError:
        return None


def copy_owned_tree(
    source: str, dest: str, uid: int, max_bytes: int, ignore: Sequence[str] = ()
) -> list[str]:
    """Copy the regular files under ``source`` owned by ``uid`` into ``dest``, never following
    a link; return the relative paths left out."""
    skipped: list[str] = []
    for folder, subfolders, files in os.walk(source, followlinks=False):
        rel = os.path.relpath(folder, source)
        for name in list(subfolders):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            ignored = any(fnmatch.fnmatch(name, pat) for pat in ignore)
            if ignored or not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
                subfolders.remove(name)
                if not ignored:
                    skipped.append(os.path.normpath(os.path.join(rel, name)))
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for name in files:
            if any(fnmatch.fnmatch(name, pat) for pat in ignore):
                continue
            src = os.path.join(folder, name)
            try:
                if os.lstat(src).st_uid != uid:
                    raise NotARegularFile(f"{src} belongs to another account")
                fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                try:  # the owner again on the open file: it may have been swapped
                    if os.fstat(fd).st_uid != uid:
                        raise NotARegularFile(f"{src} belongs to another account")
                finally:
                    os.close(fd)
                copy_regular_file(src, os.path.join(dest, rel, name), max_bytes)
            except OSError:
                skipped.append(os.path.normpath(os.path.join(rel, name)))
    return skipped


class SafeCollect(ExchangeCollect):
    """``nbgrader collect`` that trusts only folders and files owned by the submitter."""

    def _genuine(self, record: dict) -> bool:
        path = os.path.join(self.inbound_path, record["filename"])
        info = os.lstat(path)
        uid = _owner_uid(record["username"])
        if not stat.S_ISDIR(info.st_mode):
            self.log.error("Skipping %s: not a folder (a link?)", path)
            return False
        if uid is None or info.st_uid != uid:
            self.log.error(
                "Skipping %s: it names %s but belongs to uid %d",
                path,
                record["username"],
                info.st_uid,
            )
            return False
        return True

    def _sort_by_timestamp(self, records):
        genuine = [r for r in records if self._genuine(r)]
        ordered = super()._sort_by_timestamp(genuine)
        # nbgrader takes element 0; a placeholder that copy_files drops keeps it happy
        return ordered or [{"username": None, "filename": None, "timestamp": datetime.min}]

    def copy_files(self):
        self.src_records = [r for r in self.src_records if r["filename"] is not None]
        super().copy_files()

    def do_copy(self, src, dest, log=None):
        username = self._path_to_record(src)["username"]
        uid = _owner_uid(username)
        max_bytes = 1000 * self.coursedir.max_file_size
        skipped = copy_owned_tree(src, dest, uid, max_bytes, list(self.coursedir.ignore))
        for name in skipped:
            self.log.error(
                "Not collected from %s: %s (a link, another owner's file, or too big)",
                username,
                name,
            )
