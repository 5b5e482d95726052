"""The one error root of the course platform (``academy``).

Catch ``AcademyError`` to handle anything the platform raises on purpose: ``f0`` does, and
prints the error's one-line message (exit code 2). Each error also derives from the built-in
exception callers caught before the root existed (a bad file is a ``ValueError``, a failed
build a ``RuntimeError``), so older ``except`` clauses keep working. Every class is importable
from this module and from the module that raises it (``academy.manifest.ManifestError``,
``academy.certificates.keys.KeyFileError``, ...)::

    AcademyError
    ├── ManifestError            (ValueError)      course.yaml is missing or inconsistent
    ├── ProgressError            (ValueError)      .f0/progress.json cannot be read; names it
    ├── BuildError               (RuntimeError)    a generation step failed; names module, step
    ├── UsageError                                 what was asked of f0 cannot be done
    ├── SandboxUnavailable       (RuntimeError)    the sandbox is required, bwrap is missing
    ├── CaseFailed               (AssertionError)  a hidden check failed; shown to the learner
    │   └── ExerciseNotPassed                      a grade cell's exercise lost points [learner]
    ├── NotARegularFile          (OSError)         a student's file is a link, FIFO, or too big
    ├── CertificateError         (ValueError)      a certificate cannot be made or trusted
    │   ├── KeyFileError                           a key file or key id is unusable; names it
    │   ├── SigningKeyError                        a key would sign what it must not sign
    │   └── VerificationError                      a credential does not verify; says why
    ├── RosterError                                the hub's roster file is unusable  [hub]
    ├── AccountCommandFailed     (CalledProcessError) a command run as an account failed [hub]
    ├── ServiceError                               the grading service refused a check [service]
    ├── BundleError              (ValueError)      a grading task's files cannot travel [service]
    ├── UngradableNotebook                         nbgrader cannot read a submission  [grading]
    ├── ForkServerGone           (RuntimeError)    the suite fork server ended early  [grading]
    ├── LearnerError                               the learner's code hung or crashed [bridge]
    │   ├── LearnerTimeout                         a request ran past its deadline    [bridge]
    │   └── LearnerCrashed                         the worker process ended           [bridge]
    └── LearnerException                           the learner's code raised          [bridge]

``[bridge]``, ``[grading]``, ``[hub]``, ``[learner]``, ``[service]``: defined beside the code
that raises them (``academy.bridge.client``, ``academy.grading.sanitize``, ``academy.hub``,
``academy.learner.incell``, ``academy.service``).
"""

from __future__ import annotations

__all__ = [
    "AcademyError",
    "BuildError",
    "CaseFailed",
    "CertificateError",
    "KeyFileError",
    "ManifestError",
    "NotARegularFile",
    "ProgressError",
    "SandboxUnavailable",
    "SigningKeyError",
    "UsageError",
    "VerificationError",
]


class AcademyError(Exception):
    """Root of every error the course platform raises on purpose; the message is one line."""


class ManifestError(AcademyError, ValueError):
    """``course.yaml`` is missing or inconsistent; the message says where."""


class ProgressError(AcademyError, ValueError):
    """``.f0/progress.json`` cannot be read; the message names the file and the problem."""


class BuildError(AcademyError, RuntimeError):
    """A generation step failed; the message names the module and the step."""


class UsageError(AcademyError):
    """A problem with what was asked (a file, a key, a name); ``f0`` exits with code 2."""


class SandboxUnavailable(AcademyError, RuntimeError):
    """The sandbox was required but cannot be built on this machine."""


class CaseFailed(AcademyError, AssertionError):
    """A hidden check failed; its text is shown to the learner, so it must not quote tests."""


class NotARegularFile(AcademyError, OSError):
    """A student-folder entry that is a link, FIFO, socket, device or oversized file."""


class CertificateError(AcademyError, ValueError):
    """A certificate cannot be made, signed or trusted."""


class KeyFileError(CertificateError):
    """A key file (or key id) is missing, unreadable, of the wrong kind or in the wrong place."""


class SigningKeyError(CertificateError):
    """A key was asked to sign what it must not: a credential naming another issuer key, or
    the course's certificates when it is not the key ``course.yaml`` publishes."""


class VerificationError(CertificateError):
    """The credential does not verify; ``reason`` is the sentence a person reads."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
