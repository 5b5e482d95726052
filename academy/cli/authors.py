"""Authors' commands: ``f0 generate``, ``rules`` and ``stale``."""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from academy import manifest
from academy.cli.common import console

__all__ = ["add_commands", "add_stale_command", "cmd_generate", "cmd_rules", "cmd_stale"]


def cmd_generate(args: argparse.Namespace) -> int:
    from academy.build import BuildError, generate

    try:
        modules = generate(manifest.load(), args.modules or None)
    except BuildError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 1
    console.print("generated exercises/ and solutions/ for " + ", ".join(m.id for m in modules))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    """The rule coverage table of each module: every labelled rule, its cases and points."""
    from academy.course.rules import coverage, notebook_rules, suite_cases

    course = manifest.load()
    modules = [course.module(m) for m in args.modules] if args.modules else course.modules
    broken = 0
    for module in modules:
        table = coverage(
            notebook_rules(course.source_notebook(module)), suite_cases(course.suite_path(module))
        )
        view = Table(
            title=f"{module.id}: {len(table.rules)} rules, {len(table.cases)} cases, "
            f"{sum(c.points for c in table.cases):g} points"
        )
        view.add_column("rule")
        view.add_column("cases", justify="right")
        view.add_column("points", justify="right")
        view.add_column("sentence")
        for rule in table.rules.values():
            count = len(table.by_rule[rule.id])
            view.add_row(
                rule.id if count else f"[red]{rule.id}[/]",
                str(count),
                f"{table.points(rule.id):g}",
                escape(rule.text if len(rule.text) < 90 else rule.text[:87] + "..."),
            )
        console.print(view)
        for line in table.problems():
            console.print(f"[red]✗ {module.id}: {escape(line)}[/]")
            broken += 1
    return 1 if broken else 0


def cmd_stale(args: argparse.Namespace) -> int:
    from academy.build import GENERATE_COMMAND, stale_files

    stale = stale_files(manifest.load())
    if stale:
        console.print("[red]stale generated files:[/red]\n  " + escape("\n  ".join(stale)))
        console.print(f"run `{GENERATE_COMMAND}` and commit the result")
        return 1
    console.print("exercises/ and solutions/ are up to date")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """generate, rules (``stale`` comes last in ``f0 --help``: see add_stale_command)."""
    gen = sub.add_parser("generate", help="rebuild exercises/ and solutions/ (authors)")
    gen.add_argument("modules", nargs="*", help="module ids (default: all)")
    gen.set_defaults(func=cmd_generate)
    rules = sub.add_parser("rules", help="which hidden cases check each notebook rule (authors)")
    rules.add_argument("modules", nargs="*", help="module ids (default: all)")
    rules.set_defaults(func=cmd_rules)


def add_stale_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """stale, registered after the instructors' commands: ``f0 --help`` has always listed it
    last."""
    stale = sub.add_parser("stale", help="fail when exercises/ or solutions/ are out of date")
    stale.set_defaults(func=cmd_stale)
