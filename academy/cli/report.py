"""``f0 check``'s report: grade one notebook, record the result, and show it."""

from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from academy import manifest
from academy.cli.common import console
from academy.levels import pass_mark, passes, reaches_mark

__all__ = ["CheckRun"]


class CheckRun:
    """Grade one notebook with a module's hidden suite, record it, and show the report."""

    def __init__(
        self, course: manifest.Course, module: manifest.Module, path: Path, record: bool = True
    ) -> None:
        self.course = course
        self.module = module
        self.path = path
        self.record = record  # False on the hub: the instructor's gradebook is the record

    def run(self, as_json: bool = False, verbose: bool = False) -> int:
        from academy.learner.checking import check_identity, check_notebook, read_notebook

        check_identity(self.course, self.module, read_notebook(self.path)[1], self.path)
        if not as_json:  # --json: stdout holds the JSON report and nothing else
            console.print(
                f"Checking [bold]{escape(str(self.path))}[/bold] against module "
                f"{self.module.number}'s hidden tests..."
            )
        result = check_notebook(self.course, self.module, self.path, record=self.record)
        report = result.report
        if as_json:
            data = report.to_json()
            data["notebook"] = str(result.path)
            data["notebook_sha256"] = result.sha256
            data["exercise_status"] = {line.exercise.id: line.status for line in result.lines}
            print(json.dumps(data, indent=2))
        elif verbose:
            self.show(report, result.lines)
        else:
            self.summary(result)
        update = result.recorded
        if not as_json and update is not None and update.below_best:
            best = update.after.best
            console.print(
                f"[dim]Your best check of module {self.module.number} ({best.score:g} / "
                f"{best.max_points:g}, {escape(best.checked_at)}) is kept for your level.[/dim]"
            )
        return 0 if self.passed(report) else 1

    def passed(self, report) -> bool:
        """Passed for certification: the pass mark reached and no critical check failed."""
        return passes(self.module, report.score, report.critical_failed())

    def verdict(self, report, lines=()) -> None:
        """The module's standing in words; the exit code says the same (0 = passed).

        Failed critical checks are listed apart, except those of exercises not started yet
        (``lines``): an untouched stub fails them all, and saying so is only noise.
        """
        number, mark = self.module.number, pass_mark(self.module)
        fresh = {line.exercise.id for line in lines if line.status == "not started"}
        critical = [c for c in report.critical_failures if c.exercise not in fresh]
        if critical:
            console.print(
                f"[bold red]⛔ {len(critical)} critical check(s) failed. They block module "
                f"{number}, and every level that needs it, whatever the score "
                "(the points are kept):[/]"
            )
            for case in critical:
                detail = f" ({case.detail})" if case.detail else ""
                console.print(
                    f"[red]  ⛔ {escape(case.exercise)}: {escape(case.cited)}{escape(detail)}[/]"
                )
        open_points = round(report.max_points - report.score, 6)
        if self.passed(report):
            still = (
                f"; {open_points:g} point(s) are still open (`--verbose` lists them)"
                if open_points > 0
                else ", with full marks"
            )
            console.print(
                f"Module {number} passed: {report.score:g} / {report.max_points:g} reaches "
                f"the pass mark {mark:g} and no critical check failed{still}. "
                "`f0 progress` shows your level."
            )
        elif report.critical_failures and reaches_mark(self.module, report.score):
            console.print(
                f"Module {number} is not passed: {report.score:g} / {report.max_points:g} "
                f"reaches the pass mark {mark:g}, but a critical check failed (above)."
            )
        else:
            console.print(
                f"Module {number} is not passed yet: {report.score:g} / "
                f"{report.max_points:g}, the pass mark is {mark:g}"
                + (" and no critical check may fail." if critical else ".")
            )

    def summary(self, result) -> None:
        """One line per exercise, the first failing behaviour, what to do next."""
        report = result.report
        console.print(
            f"[bold]Module {self.module.number} · {escape(self.module.title)}: "
            f"{report.score:g} / {report.max_points:g}[/bold]"
        )
        colours = {"passed": "green", "failing": "red", "not started": "dim"}
        for line in result.lines:
            console.print(f"[{colours[line.status]}]{escape(line.text())}[/]")
        shown = {line.first_failure for line in result.lines}
        for problem in report.load_problems:
            text = (
                f"While loading your code, {problem['label']} raised "
                f"{problem['error']['type']}: {problem['error']['message']}"
            )
            if problem["error"]["type"] != "NotImplementedError" and text not in shown:
                console.print(f"[yellow]{escape(text)}[/yellow]")
        self.verdict(report, result.lines)
        console.print(escape(result.next_step) + " (`--verbose` lists every check.)")

    def show(self, report, lines=()) -> None:
        table = Table(title=f"Module {self.module.number} · {escape(self.module.title)}")
        table.add_column("exercise")
        table.add_column("score", justify="right")
        table.add_column("what to fix")
        for result in report.exercises.values():
            ex = result.exercise
            fixes = result.problems + [
                ("⛔ CRITICAL " if c.critical else "✗ ")
                + c.cited
                + (f" ({c.detail})" if c.detail else "")
                for c in sorted(result.cases, key=lambda c: not c.critical)
                if not c.passed
            ]
            style = "green" if result.score >= ex.points else "red"
            table.add_row(
                escape(f"{ex.id} {ex.title}"),
                f"[{style}]{result.score:g} / {ex.points:g}[/]",
                escape("\n".join(fixes)) or "all checks pass",
            )
        console.print(table)
        for problem in report.load_problems:
            console.print(
                f"[yellow]While loading your code, {escape(problem['label'])} raised "
                f"{escape(problem['error']['type'])}: {escape(problem['error']['message'])}"
                "[/yellow]"
            )
        console.print(f"Total: [bold]{report.score:g} / {report.max_points:g}[/bold]")
        self.verdict(report, lines)
