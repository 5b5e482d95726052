"""``f0``: the course from a terminal.

Learners: ``f0 check module1`` grades your notebook with the same trusted runner the
instructor uses and records the result; ``f0 progress`` shows every module and the level
reached; ``f0 watch module1`` re-checks on every save; ``f0 hint module1 1.3`` shows the next
hint; ``f0 certify`` signs a self-assessed certificate with your own key.
Instructors: ``f0 keygen`` makes the course's signing key, ``f0 issue`` signs every student's
certificate from the gradebook, ``f0 verify`` checks any certificate offline and says whether
the course's published key signed it.
Authors: ``f0 generate`` rebuilds exercises/ and solutions/ from curriculum/.

Every error the platform raises on purpose (``academy.errors.AcademyError``) ends ``f0`` with
its message, which names the bad file, key or name, and exit code 2: never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from rich.markup import escape

from academy.cli import authors, certificates, instructors, learner
from academy.cli.authors import cmd_generate, cmd_rules, cmd_stale
from academy.cli.certificates import cmd_certify, cmd_issue, cmd_keygen, cmd_verify
from academy.cli.common import console
from academy.cli.instructors import cmd_autograde, cmd_serve
from academy.cli.learner import (
    cmd_check,
    cmd_hint,
    cmd_lab,
    cmd_progress,
    cmd_reset,
    cmd_start,
    cmd_watch,
)
from academy.cli.report import CheckRun
from academy.errors import AcademyError, UsageError

__all__ = [
    "AcademyError",
    "CheckRun",
    "UsageError",
    "cmd_autograde",
    "cmd_certify",
    "cmd_check",
    "cmd_generate",
    "cmd_hint",
    "cmd_issue",
    "cmd_keygen",
    "cmd_lab",
    "cmd_progress",
    "cmd_reset",
    "cmd_rules",
    "cmd_serve",
    "cmd_stale",
    "cmd_start",
    "cmd_verify",
    "cmd_watch",
    "console",
    "main",
    "parser",
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="f0", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    # the order of f0 --help
    learner.add_commands(sub)  # check, progress, hint, watch, start, lab, reset
    certificates.add_commands(sub)  # certify, keygen, issue, verify
    authors.add_commands(sub)  # generate, rules
    instructors.add_commands(sub)  # autograde, serve
    authors.add_stale_command(sub)  # stale
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # argparse drops "--" inside a subcommand: what follows it goes to nbgrader untouched.
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser().parse_args(argv[: len(argv) - len(extra) - 1] if "--" in argv else argv)
    if extra:
        field = next((f for f in ("nbgrader_args", "jupyter_args") if hasattr(args, f)), None)
        if field is None:
            parser().error(f"{args.command} takes no options after --")
        setattr(args, field, [*getattr(args, field), *extra])
    try:
        return args.func(args)
    except AcademyError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 2
