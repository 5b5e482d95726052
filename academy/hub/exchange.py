"""nbgrader's exchange on the hub: collect hardened for a shared exchange where learners are
not trusted, and fetch_feedback that also brings the learner's certificate.

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

:class:`FetchFeedbackAndCertificate` (the learners' ``c.ExchangeFactory.fetch_feedback``) is
stock ``fetch_feedback`` that also fetches the certificate page the instructor put beside the
feedback (``f0 issue --feedback``, see ``academy.certificates.delivery``). ``release_feedback``
releases every page of a feedback folder under ``notebook_hash(secret, name)``, but stock
fetch_feedback looks only for the names of the submitted notebooks; this one also looks for
``certificate``, with the secret of each of the learner's own submissions, and copies it to
``<assignment>/feedback/<timestamp>/certificate.html`` like any feedback.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import pwd
import stat
from collections.abc import Sequence
from datetime import datetime

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.fetch_feedback import ExchangeFetchFeedback
from nbgrader.utils import notebook_hash

from academy.certificates.page import CERTIFICATE_FEEDBACK
from academy.errors import NotARegularFile
from academy.grading.nofollow import copy_regular_file

__all__ = ["FetchFeedbackAndCertificate", "SafeCollect", "copy_owned_tree"]


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


class FetchFeedbackAndCertificate(ExchangeFetchFeedback):
    """``nbgrader fetch_feedback`` that also fetches the learner's certificate page."""

    def init_src(self):
        super().init_src()
        found = {path for _, _, path in self.feedback_files}
        assignment_id = self.coursedir.assignment_id or "*"
        pattern = os.path.join(self.cache_path, f"*+{assignment_id}+*")
        for submission in sorted(glob.glob(pattern)):
            timestamp = os.path.basename(submission).split("+")[2]
            secret_file = os.path.join(submission, "submission_secret.txt")
            if not os.path.isfile(secret_file):
                continue  # an old submission without a secret: no certificate for it
            with open(secret_file) as fh:
                secret = fh.read()
            digest = notebook_hash(secret=secret, notebook_id=CERTIFICATE_FEEDBACK)
            path = os.path.join(self.outbound_path, f"{digest}.html")
            if path not in found and os.path.isfile(path):
                self.feedback_files.append((CERTIFICATE_FEEDBACK, timestamp, path))
                found.add(path)
                self.log.info("Found a certificate in the feedback submitted at %s", timestamp)
