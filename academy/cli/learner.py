"""Learners' commands: ``f0 check``, ``progress``, ``hint``, ``watch``, ``start``, ``lab``,
``reset``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from academy import manifest
from academy.cli.common import console
from academy.cli.report import CheckRun
from academy.errors import UsageError
from academy.learner.progress import ProgressStore, level_inputs
from academy.levels import LevelRules, LevelState, blocking_words, pass_mark, passes, reaches_mark
from framework0 import atomic_write

__all__ = [
    "add_commands",
    "cmd_check",
    "cmd_hint",
    "cmd_lab",
    "cmd_progress",
    "cmd_reset",
    "cmd_start",
    "cmd_watch",
]


def _notebook(course: manifest.Course, module: manifest.Module, given: str | None) -> Path:
    """The notebook given, else the learner's workspace copy (``work/``), else the release."""
    from academy.learner.workspace import Workspace

    if given:
        return Path(given)
    mine = Workspace(course).notebook(module)
    return mine if mine.is_file() else course.release_notebook(module)


def cmd_check(args: argparse.Namespace) -> int:
    fetched = _fetched_course()
    if fetched is not None:  # on the hub: a fetched notebook, checked on the course's service
        module = fetched.module(args.module)
        path = Path(args.notebook or Path(module.id) / module.notebook)
        return CheckRun(fetched, module, path, record=False).run(args.json, args.verbose)
    course = manifest.load()
    module = course.module(args.module)
    path = _notebook(course, module, args.notebook)
    return CheckRun(course, module, path).run(args.json, args.verbose)


def _fetched_course() -> manifest.Course | None:
    """The course the hub publishes, where there is no checkout here and a service grades."""
    import os

    from academy.errors import ManifestError
    from academy.learner.published import published_course

    if not os.environ.get("F0_SERVICE_URL"):
        return None
    try:
        manifest.find_course_root()
        return None  # a checkout (or a hand-out) here: its own course.yaml
    except ManifestError:
        return published_course()


def cmd_progress(args: argparse.Namespace) -> int:
    course = manifest.load()
    progress = ProgressStore(course).progress()
    table = Table(title=f"{escape(course.title)} · your progress")
    table.add_column("module", justify="left")
    table.add_column("latest", justify="right")
    table.add_column("best", justify="right")
    table.add_column("pass mark", justify="right")
    table.add_column("status")
    table.add_column("last checked")
    for module in course.modules:
        item = progress.get(module.id)
        mark = f"{pass_mark(module):g} / {module.points:g}"
        name = f"{module.number} {escape(module.title)}"
        if item is None:
            table.add_row(name, "-", "-", mark, "not checked yet", "")
            continue
        latest, best = item.latest, item.best
        if passes(module, best.score, best.critical_failed):
            status = "[green]✓ passed[/]"
        elif reaches_mark(module, best.score):
            count = len(best.critical_failed)
            status = f"[red]⛔ blocked: {count} critical check(s) failed[/]"
        else:
            status = "[red]✗ not yet[/]"
        if latest.notebook_changed(course.root):
            status += " [yellow](notebook changed since; re-run f0 check)[/]"
        table.add_row(
            name,
            f"{latest.score:g}",
            f"{best.score:g}",
            mark,
            status,
            escape(latest.checked_at.replace("T", " ").replace("Z", " UTC")),
        )
    console.print(table)
    rules = LevelRules(course)
    # a level once reached stays: decided from each module's best check
    scores, critical = level_inputs({key: p.best for key, p in progress.items()})
    for module in course.modules:
        item = progress.get(module.id)
        if item is not None and item.best.critical_failed and reaches_mark(module, item.best.score):
            console.print(
                f"[red]Module {module.number}: "
                + escape(blocking_words(item.best.critical_failed))
                + "[/]"
            )
    colours = {LevelState.REACHED: "green", LevelState.IN_PROGRESS: "yellow"}
    for level in rules.statuses(scores, critical):
        colour = colours.get(level.state, "dim")
        modules = ", ".join(map(str, rules.module_numbers(level.level)))
        console.print(
            f"{level.level.id.title()} ({escape(level.level.title)}; modules {modules}): "
            f"[{colour}]{level.state.value}[/]"
        )
    best_level = rules.highest(scores, critical)
    console.print(
        f"Level reached: [bold]{best_level.level.id.title()}[/bold] "
        f"({escape(best_level.level.title)})"
        if best_level
        else "Level reached: none yet"
    )
    upcoming = next((s for s in rules.statuses(scores, critical) if not s.reached), None)
    if upcoming is not None:
        console.print(
            f"Next, {upcoming.level.id.title()} ({upcoming.state.value}): "
            + escape("; ".join(upcoming.missing()))
        )
    return 0


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
        f"{exercise.id} ({escape(exercise.title)}):\n{escape(exercise.hints[index])}"
    )
    if shown >= len(exercise.hints):
        console.print("(that was the last hint)")
    state[key] = shown + 1
    state_file.parent.mkdir(exist_ok=True)
    atomic_write(state_file, json.dumps(state, indent=2).encode("utf-8"))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from academy.learner.watch import NotebookWatcher

    course = manifest.load()
    module = course.module(args.module)
    path = _notebook(course, module, args.notebook)
    check = CheckRun(course, module, path)
    results: list[int] = []

    def run_check() -> None:
        # Rustlings' watch screen: each check replaces the last one instead of scrolling
        # (a terminal only; piped output keeps every check, for logs and tests)
        console.clear()
        results.append(check.run())
        console.print(f"[dim]Watching {escape(str(path))} for changes (Ctrl-C to stop)...[/dim]")

    # The baseline is taken first, so a save during the initial check is not missed.
    watcher = NotebookWatcher(path, run_check, interval=args.interval, debounce=args.debounce)
    try:
        if args.no_initial:
            console.print(f"[dim]Watching {escape(str(path))} for changes (Ctrl-C to stop)...")
        else:
            run_check()
        remaining = None if args.max_checks is None else args.max_checks - len(results)
        if remaining is None or remaining > 0:
            watcher.run(max_checks=remaining)
    except KeyboardInterrupt:
        console.print("stopped watching")
        return 0
    return results[-1] if results else 0


def cmd_start(args: argparse.Namespace) -> int:
    from academy.learner.workspace import Workspace

    course = manifest.load()
    workspace = Workspace(course)
    copied = workspace.start()
    where = workspace.root.relative_to(course.root)
    if copied:
        console.print(f"Copied {len(copied)} new file(s) into {escape(str(where))}/.")
    else:
        console.print(f"{escape(str(where))}/ is up to date; nothing was overwritten.")
    first = workspace.notebook(course.modules[0]).relative_to(course.root)
    console.print(f"Your work lives in {escape(str(where))}/ (start with {escape(str(first))}).")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from academy.learner.lab import lab_command
    from academy.learner.workspace import Workspace

    course = manifest.load()
    Workspace(course).start()
    command = lab_command(list(args.jupyter_args))
    sys.stdout.flush()
    os.chdir(course.root)
    os.execv(command[0], command)
    return 0  # pragma: no cover - execv does not return


def cmd_reset(args: argparse.Namespace) -> int:
    from academy.learner.workspace import Workspace

    course = manifest.load()
    module = course.module(args.module)
    exercise = module.exercise(args.exercise)
    workspace = Workspace(course)
    plan = workspace.plan_reset(module, exercise)
    where = (
        plan.path.relative_to(course.root) if plan.path.is_relative_to(course.root) else plan.path
    )
    if not plan.changes:
        console.print(
            f"Exercise {exercise.id} in {escape(str(where))} is already at its starting code."
        )
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"f0 reset would replace your code for exercise {exercise.id} in {where}; "
                "pass --yes to confirm when there is no terminal to ask"
            )
        answer = input(
            f"Replace your code for exercise {exercise.id} ({exercise.title}) in {where} "
            "with its starting code? Save and close the notebook first. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            console.print("Nothing changed.")
            return 1
    workspace.reset(plan)
    console.print(
        f"Exercise {exercise.id} is back to its starting code in {escape(str(where))} "
        "(reload the notebook in JupyterLab)."
    )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """check, progress, hint, watch, start, lab, reset."""
    check = sub.add_parser("check", help="grade your notebook with the hidden tests")
    check.add_argument("module", help="module id or number, e.g. module1 or 1")
    check.add_argument(
        "notebook",
        nargs="?",
        help="notebook to check (default: your work/ copy, else exercises/; on the hub, "
        "MODULE/ as fetched)",
    )
    check.add_argument("--json", action="store_true", help="print the full report as JSON")
    check.add_argument("--verbose", action="store_true", help="every failing check, in a table")
    check.set_defaults(func=cmd_check)

    progress = sub.add_parser("progress", help="your scores, the level reached, what is next")
    progress.set_defaults(func=cmd_progress)

    hint = sub.add_parser("hint", help="show the next hint for an exercise")
    hint.add_argument("module")
    hint.add_argument("exercise", help="exercise id, e.g. 1.3")
    hint.set_defaults(func=cmd_hint)

    watch = sub.add_parser("watch", help="re-check a notebook every time it is saved")
    watch.add_argument("module", help="module id or number")
    watch.add_argument("notebook", nargs="?", help="notebook to watch (default: exercises/)")
    watch.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    watch.add_argument("--debounce", type=float, default=0.8, help="quiet seconds before a check")
    watch.add_argument("--max-checks", type=int, help="stop after this many checks")
    watch.add_argument("--no-initial", action="store_true", help="wait for a save to check")
    watch.set_defaults(func=cmd_watch)

    start = sub.add_parser("start", help="make your workspace: work/, your copy of exercises/")
    start.set_defaults(func=cmd_start)

    lab = sub.add_parser(
        "lab",
        help="JupyterLab on your workspace (what `make lab` runs)",
        description="Makes your workspace (f0 start), then starts JupyterLab on it. Options "
        "after -- go to jupyter lab (e.g. -- --port=8889 --no-browser).",
    )
    lab.add_argument("jupyter_args", nargs="*", help="jupyter lab options, after --")
    lab.set_defaults(func=cmd_lab)

    reset = sub.add_parser("reset", help="put one exercise's starting code back in work/")
    reset.add_argument("module", help="module id or number")
    reset.add_argument("exercise", help="exercise id, e.g. 1.3")
    reset.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    reset.set_defaults(func=cmd_reset)
