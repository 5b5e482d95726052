"""``f0``: the course from a terminal.

Learners: ``f0 check module1`` grades your notebook with the same trusted runner the
instructor uses; ``f0 hint module1 1.3`` shows the next hint for an exercise.
Instructors and authors: ``f0 generate`` rebuilds exercises/ and solutions/ from curriculum/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# jsonschema's optional format checker pulls in rfc3987_syntax, which costs ~1.5 s per
# process; nothing here validates URI formats, so skip it (see shared notes).
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from academy import manifest  # noqa: E402

console = Console(stderr=False)


def cmd_check(args: argparse.Namespace) -> int:
    import nbformat

    from academy.grading.suite_runner import run_hidden_suite

    course = manifest.load()
    module = course.module(args.module)
    path = Path(args.notebook) if args.notebook else course.release_notebook(module)
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read notebook {path}: {exc}[/red]")
        return 2
    console.print(f"Checking [bold]{path}[/bold] against module {module.number}'s hidden tests...")
    report = run_hidden_suite(course, module, nb)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0 if report.score >= report.max_points else 1
    table = Table(title=f"Module {module.number} · {module.title}")
    table.add_column("exercise")
    table.add_column("score", justify="right")
    table.add_column("what to fix")
    for result in report.exercises.values():
        ex = result.exercise
        fixes = [
            f"✗ {c.message}" + (f" ({c.detail})" if c.detail else "")
            for c in result.cases
            if not c.passed
        ]
        fixes = result.problems + fixes
        style = "green" if result.score >= ex.points else "red"
        table.add_row(
            f"{ex.id} {ex.title}",
            f"[{style}]{result.score:g} / {ex.points:g}[/]",
            "\n".join(fixes) or "all checks pass",
        )
    console.print(table)
    for problem in report.load_problems:
        console.print(
            f"[yellow]While loading your code, {problem['label']} raised "
            f"{problem['error']['type']}: {problem['error']['message']}[/yellow]"
        )
    console.print(f"Total: [bold]{report.score:g} / {report.max_points:g}[/bold]")
    if not report.sandboxed:
        console.print(
            "[dim]Note: your code ran without a sandbox (bubblewrap is not "
            "available here); grading is the same.[/dim]"
        )
    return 0 if report.score >= report.max_points else 1


def cmd_hint(args: argparse.Namespace) -> int:
    course = manifest.load()
    module = course.module(args.module)
    exercise = module.exercise(args.exercise)
    state_file = course.root / ".f0" / "hints.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    key = f"{module.id}:{exercise.id}"
    shown = state.get(key, 0)
    if not exercise.hints:
        console.print(f"Exercise {exercise.id} has no hints.")
        return 0
    index = min(shown, len(exercise.hints) - 1)
    console.print(
        f"[bold]Hint {index + 1} of {len(exercise.hints)}[/bold] for exercise "
        f"{exercise.id} ({exercise.title}):\n{exercise.hints[index]}"
    )
    if shown >= len(exercise.hints):
        console.print("(that was the last hint)")
    state[key] = shown + 1
    state_file.parent.mkdir(exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from academy.build import BuildError, generate

    try:
        modules = generate(manifest.load(), args.modules or None)
    except BuildError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    console.print("generated exercises/ and solutions/ for " + ", ".join(m.id for m in modules))
    return 0


def cmd_stale(args: argparse.Namespace) -> int:
    from academy.build import GENERATE_COMMAND, stale_files

    stale = stale_files(manifest.load())
    if stale:
        console.print("[red]stale generated files:[/red]\n  " + "\n  ".join(stale))
        console.print(f"run `{GENERATE_COMMAND}` and commit the result")
        return 1
    console.print("exercises/ and solutions/ are up to date")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="f0", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="grade your notebook with the hidden tests")
    check.add_argument("module", help="module id or number, e.g. module1 or 1")
    check.add_argument("notebook", nargs="?", help="notebook to check (default: exercises/)")
    check.add_argument("--json", action="store_true", help="print the full report as JSON")
    check.set_defaults(func=cmd_check)
    hint = sub.add_parser("hint", help="show the next hint for an exercise")
    hint.add_argument("module")
    hint.add_argument("exercise", help="exercise id, e.g. 1.3")
    hint.set_defaults(func=cmd_hint)
    gen = sub.add_parser("generate", help="rebuild exercises/ and solutions/ (authors)")
    gen.add_argument("modules", nargs="*", help="module ids (default: all)")
    gen.set_defaults(func=cmd_generate)
    stale = sub.add_parser("stale", help="fail when exercises/ or solutions/ are out of date")
    stale.set_defaults(func=cmd_stale)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except manifest.ManifestError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2


if __name__ == "__main__":
    sys.exit(main())
