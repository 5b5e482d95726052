"""Moved to :mod:`academy.learner.progress`; kept for ``academy.certificates``' import."""

from academy.learner.progress import (  # noqa: F401
    ModuleProgress,
    ModuleRecord,
    ProgressError,
    ProgressStore,
    file_sha256,
)
