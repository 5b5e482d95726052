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
import getpass
import json
import os
import sys
import unicodedata
from pathlib import Path

# jsonschema's optional format checker pulls in rfc3987_syntax, which costs ~1.5 s per
# process; nothing here validates URI formats, so skip it (see shared notes).
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from academy import manifest  # noqa: E402
from academy.errors import AcademyError, UsageError  # noqa: E402
from academy.learner.progress import ProgressStore  # noqa: E402
from academy.levels import (  # noqa: E402
    LevelRules,
    LevelState,
    blocking_words,
    pass_mark,
    passes,
    reaches_mark,
)
from framework0.persistence import atomic_write  # noqa: E402

# soft_wrap: paths and messages stay on one line, whatever the width (pipes, CI logs)
console = Console(stderr=False, highlight=False, emoji=False, soft_wrap=True)  # did:key: no emoji


# --- learners ------------------------------------------------------------------------------


class CheckRun:
    """Grade one notebook with a module's hidden suite, record it, and show the report."""

    def __init__(self, course: manifest.Course, module: manifest.Module, path: Path) -> None:
        self.course = course
        self.module = module
        self.path = path

    def run(self, as_json: bool = False, verbose: bool = False) -> int:
        from academy.learner.checking import check_identity, check_notebook, read_notebook

        check_identity(self.course, self.module, read_notebook(self.path)[1], self.path)
        if not as_json:  # --json: stdout holds the JSON report and nothing else
            console.print(
                f"Checking [bold]{escape(str(self.path))}[/bold] against module "
                f"{self.module.number}'s hidden tests..."
            )
        result = check_notebook(self.course, self.module, self.path)
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


def _notebook(course: manifest.Course, module: manifest.Module, given: str | None) -> Path:
    """The notebook given, else the learner's workspace copy (``work/``), else the release."""
    from academy.learner.workspace import Workspace

    if given:
        return Path(given)
    mine = Workspace(course).notebook(module)
    return mine if mine.is_file() else course.release_notebook(module)


def cmd_check(args: argparse.Namespace) -> int:
    course = manifest.load()
    module = course.module(args.module)
    path = _notebook(course, module, args.notebook)
    return CheckRun(course, module, path).run(args.json, args.verbose)


def cmd_progress(args: argparse.Namespace) -> int:
    course = manifest.load()
    progress = ProgressStore(course).progress()
    table = Table(title=f"{escape(course.title)} · your progress")
    for name, justify in (("module", "left"), ("latest", "right"), ("best", "right")):
        table.add_column(name, justify=justify)
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
    scores = {key: p.best.score for key, p in progress.items()}  # a level once reached stays
    critical = {key: p.best.critical_failed for key, p in progress.items()}
    for module in course.modules:
        item = progress.get(module.id)
        if item is not None and item.best.critical_failed and reaches_mark(module, item.best.score):
            console.print(
                f"[red]Module {module.number}: "
                + escape(blocking_words(item.best.critical_failed))
                + "[/]"
            )
    colours = {LevelState.REACHED: "green", LevelState.IN_PROGRESS: "yellow"}
    for status in rules.statuses(scores, critical):
        colour = colours.get(status.state, "dim")
        modules = ", ".join(map(str, rules.module_numbers(status.level)))
        console.print(
            f"{status.level.id.title()} ({escape(status.level.title)}; modules {modules}): "
            f"[{colour}]{status.state.value}[/]"
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
    from academy.watch import NotebookWatcher

    course = manifest.load()
    module = course.module(args.module)
    path = _notebook(course, module, args.notebook)
    check = CheckRun(course, module, path)
    results: list[int] = []

    def run_check() -> None:
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


def cmd_certify(args: argparse.Namespace) -> int:
    from academy.certificates.credential import Learner
    from academy.certificates.issue import CertificateWriter, SelfAssessment
    from academy.certificates.keys import KeyPaths, generate_key, load_private_key
    from academy.certificates.vcjwt import CredentialSigner

    course = manifest.load()
    assessment = SelfAssessment(course, ProgressStore(course).records())
    best = assessment.best()
    if best is None:
        console.print("[red]No level reached yet, so there is nothing to certify.[/red]")
        upcoming = assessment.next_level()
        if upcoming is not None:
            console.print(
                f"{upcoming.level.id.title()} ({upcoming.state.value}): "
                + escape("; ".join(upcoming.missing()))
            )
        return 1
    for module_id in assessment.changed_notebooks(best):
        console.print(
            f"[yellow]{module_id}: the notebook changed since it was checked; this "
            "certificate uses the last check (re-run f0 check to update it).[/yellow]"
        )
    paths = KeyPaths.for_private(Path(args.key)) if args.key else KeyPaths.default("learner")
    if paths.private.exists():
        key = load_private_key(paths.private)
    else:
        key = generate_key(paths)
        console.print(f"Created your signing key: {escape(str(paths.private))} (keep it private)")
    who = getpass.getuser()
    signer = CredentialSigner(key)
    award = assessment.award(best, Learner(args.id or who, args.name or who), signer.issuer_id)
    out = Path(args.out) if args.out else course.root / ".f0" / "certificates"
    written = CertificateWriter(signer, out).write(award, f"self-assessed-{best.level.id}")
    console.print(
        f"[bold]Self-assessed[/bold] {best.level.id.title()} certificate "
        "(signed with your own key; it is not the course's certificate):"
    )
    for path in (written.html, written.pdf, written.png, written.jwt):
        console.print(f"  {escape(str(path))}")
    console.print(
        f"Anyone can check it: f0 verify {escape(str(written.jwt))} "
        f"--public-key {escape(str(paths.public))}"
    )
    return 0


# --- instructors ----------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from academy.certificates.keys import KeyPaths, did_key, generate_key

    folder = Path(args.out).expanduser() if args.out else None
    if folder is not None and folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is not a folder: give a folder for the key pair")
    paths = KeyPaths.default(args.role, folder)
    try:
        key = generate_key(paths, overwrite=args.force)
    except OSError as exc:
        where = folder if folder is not None else paths.private.parent
        raise UsageError(f"cannot write keys to {where}: {exc.strerror or exc}") from exc
    console.print(f"private key (keep secret, never commit): {escape(str(paths.private))}")
    console.print(f"public key (publish it; verifiers need it): {escape(str(paths.public))}")
    console.print(f"key id: {did_key(key.public_key())}")
    if args.role == "issuer":
        console.print(
            "To make it the course's key: copy the public key into the repository and put its "
            "path and key id in course.yaml (issuer: public_key, key_id)."
        )
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from nbgrader.api import Gradebook

    from academy.certificates.issue import CertificateIssuer, CertificateWriter, GradebookScores
    from academy.certificates.keys import KeyPaths, load_private_key
    from academy.certificates.vcjwt import CredentialSigner

    course = manifest.load()
    gradebook = Path(args.gradebook)
    if not gradebook.is_file():  # nbgrader would quietly create an empty one
        raise UsageError(f"no gradebook at {gradebook}")
    key_path = Path(args.key).expanduser() if args.key else KeyPaths.default("issuer").private
    if not key_path.is_file():
        given = f"{key_path} (--key)" if args.key else str(key_path)
        raise UsageError(
            f"no course private key at {given}: run `f0 keygen` to make one, or pass "
            "--key PATH to the course's private key"
        )
    signer = CredentialSigner(load_private_key(key_path))
    issuer = CertificateIssuer(
        course,
        CertificateWriter(signer, Path(args.out)),
        issuer_name=args.issuer_name,
        valid_days=args.valid_days,
    )
    with Gradebook(f"sqlite:///{gradebook.resolve()}", course.course_id) as gb:
        students = GradebookScores(course).read(gb, args.student or ())
    report = issuer.issue(students)
    console.print(escape(report.summary()))
    console.print(f"issuer key: {signer.issuer_id}")
    return 0


def _shown(value: object) -> str:
    """Text from a credential, safe to print: rich markup escaped, and control characters
    (new lines, terminal escapes, bidi overrides) written as escapes, so the content of a
    certificate can never print a line of its own, such as a fake "OK"."""
    text = "".join(
        c if unicodedata.category(c)[0] != "C" else f"\\u{ord(c):04x}" for c in str(value)
    )
    return escape(text)


def cmd_verify(args: argparse.Namespace) -> int:
    from academy.certificates.keys import KeyFileError, load_public_key
    from academy.certificates.trust import CertificateCheck, Standing, named_signing_key
    from academy.errors import VerificationError

    course = manifest.load()
    issuer = course.issuer
    path = Path(args.path)
    try:
        given = load_public_key(Path(args.public_key)) if args.public_key else None
        verdict = CertificateCheck(issuer.key() if issuer else None, given).check_file(path)
    except (VerificationError, KeyFileError) as exc:
        console.print(f"[red]FAILED[/red]: {_shown(exc)}")
        try:
            named = named_signing_key(path.read_bytes())
        except OSError:
            named = None
        if named:
            ours = issuer is not None and named == issuer.key_id
            whose = "this course's key" if ours else "NOT this course's key"
            console.print(f"The credential names signing key {named} ({whose}).")
        return 1
    credential = verdict.verified.credential
    subject = credential["credentialSubject"]
    identifiers = subject.get("identifier")
    names = {
        i.get("identityType"): i.get("identityHash")
        for i in (identifiers if isinstance(identifiers, list) else [])
        if isinstance(i, dict)
    }
    what = (
        f"{_shown(subject['achievement']['name'])} for {_shown(names.get('name', '?'))} "
        f"({_shown(names.get('studentId', '?'))})"
    )
    when = _shown(credential["validFrom"])
    signer = verdict.signing_key_id  # a did:key this process computed from the key itself
    ours = f"this course's key is {issuer.key_id}" if issuer else "course.yaml publishes none"
    if verdict.standing is Standing.COURSE and issuer is not None:
        console.print(
            f"[green]OK[/green]: {what}, issued by {_shown(issuer.name)} "
            f"(course key {signer}) on {when}"
        )
        if verdict.verified.self_assessed:
            console.print("[yellow]Its signed content is marked self-assessed.[/yellow]")
    elif verdict.standing is Standing.SELF_ASSESSED:
        console.print(
            f"[yellow]SELF-ASSESSED[/yellow]: {what}, signed on {when} by the learner's own key "
            f"{signer}, which is NOT this course's key ({ours}); it is not a certificate "
            "issued by the course."
        )
    else:
        named_issuer = credential["issuer"]
        claimed = named_issuer.get("name", "?") if isinstance(named_issuer, dict) else "?"
        console.print(
            f"[red]NOT ISSUED BY THIS COURSE[/red]: {what}, signed by key {signer} which is NOT "
            f"this course's key ({ours}). It names {_shown(repr(claimed))} as its issuer, but "
            "only a credential signed by the course's key is the course's."
        )
    if not verdict.accepted:
        console.print(
            "The signature is valid for the key the credential itself names, which shows who "
            "signed it, not that the course did. To check it against a key you trust, pass "
            "--public-key."
        )
    if args.json:
        print(json.dumps(credential, indent=2, ensure_ascii=False))
    return 0 if verdict.accepted else 1


# --- authors --------------------------------------------------------------------------------


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


def cmd_autograde(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from academy.grading.parallel import grade_in_parallel, submitted_students

    course = manifest.load()
    students = args.student or submitted_students(course.root, args.assignment)
    if not students:
        console.print(f"[red]no submissions in submitted/*/{args.assignment}[/red]")
        return 2
    columns = (
        TextColumn("grading {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(args.assignment, total=len(students))
        scheduler = args.scheduler or os.environ.get("F0_DASK_SCHEDULER") or None
        try:
            if args.dask or scheduler:
                from academy.grading.parallel import grade_on_dask

                results = grade_on_dask(
                    course.root,
                    args.assignment,
                    students,
                    scheduler=scheduler,
                    workers=args.workers,
                    force=args.force,
                    nbgrader_args=tuple(args.nbgrader_args),
                    on_result=lambda _: bar.advance(task),
                )
            else:
                results = grade_in_parallel(
                    course.root,
                    args.assignment,
                    students,
                    args.workers,
                    args.force,
                    tuple(args.nbgrader_args),
                    on_result=lambda _: bar.advance(task),
                )
        except FileNotFoundError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            return 2
    table = Table(title=f"{args.assignment}: {len(results)} submissions")
    for column in ("student", "status", "score", "flagged", "seconds"):
        table.add_column(column)
    for r in sorted(results, key=lambda r: r.student):
        score = "" if r.score is None else f"{r.score:g} / {r.max_score:g}"
        table.add_row(
            r.student,
            r.status,
            score,
            "yes" if r.flagged else "",
            f"{r.seconds:.1f}" if r.seconds else "",
        )
    console.print(table)
    for r in results:
        if r.status == "failed":
            console.print(f"[red]{r.student}: nbgrader could not grade it:[/red]\n{r.error}")
    return 1 if any(r.status == "failed" for r in results) else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from academy.service.server import GradingService, load_tokens, serve

    course = manifest.load(Path(args.course) if args.course else None)
    service = GradingService(
        course,
        load_tokens(Path(args.tokens)),
        scheduler=args.scheduler or os.environ.get("F0_DASK_SCHEDULER") or None,
        workers=args.workers,
        rate=args.rate,
        max_waiting=args.max_waiting,
    )
    serve(service, args.host, args.port)
    return 0


def cmd_stale(args: argparse.Namespace) -> int:
    from academy.build import GENERATE_COMMAND, stale_files

    stale = stale_files(manifest.load())
    if stale:
        console.print("[red]stale generated files:[/red]\n  " + escape("\n  ".join(stale)))
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

    certify = sub.add_parser("certify", help="a self-assessed certificate for your level")
    certify.add_argument("--name", help="your name on the certificate (default: user name)")
    certify.add_argument("--id", help="your learner id (default: user name)")
    certify.add_argument("--key", help="your private key (default: created in ~/.config)")
    certify.add_argument("--out", help="output folder (default: .f0/certificates)")
    certify.set_defaults(func=cmd_certify)

    keygen = sub.add_parser("keygen", help="make an Ed25519 signing key pair")
    keygen.add_argument("--role", choices=("issuer", "learner"), default="issuer")
    keygen.add_argument("--out", help="folder outside the repository (default: ~/.config/...)")
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(func=cmd_keygen)

    issue = sub.add_parser("issue", help="sign every student's certificate from the gradebook")
    issue.add_argument("--gradebook", default="gradebook.db")
    issue.add_argument("--key", help="the course's private key (default: ~/.config/...)")
    issue.add_argument("--out", default="certificates", help="output folder")
    issue.add_argument("--issuer-name", help="issuer name (default: course.yaml's issuer.name)")
    issue.add_argument("--valid-days", type=int, help="days until expiry (default: none)")
    issue.add_argument("--student", action="append", help="only this student (repeatable)")
    issue.set_defaults(func=cmd_issue)

    verify = sub.add_parser("verify", help="check a certificate's signature and content")
    verify.add_argument("path", help="the certificate's .jwt file")
    verify.add_argument(
        "--public-key",
        help="check against this public key (PEM) instead of the course's (course.yaml: issuer)",
    )
    verify.add_argument("--json", action="store_true", help="print the verified credential")
    verify.set_defaults(func=cmd_verify)

    gen = sub.add_parser("generate", help="rebuild exercises/ and solutions/ (authors)")
    gen.add_argument("modules", nargs="*", help="module ids (default: all)")
    gen.set_defaults(func=cmd_generate)
    rules = sub.add_parser("rules", help="which hidden cases check each notebook rule (authors)")
    rules.add_argument("modules", nargs="*", help="module ids (default: all)")
    rules.set_defaults(func=cmd_rules)
    grade = sub.add_parser(
        "autograde",
        help="autograde every submission in parallel (instructors)",
        description="Runs `nbgrader autograde --student=S` for each submission in parallel, "
        "each against a private copy of the gradebook, and saves each student's grades into "
        "gradebook.db as soon as they finish (one writer). Interrupted runs keep finished "
        "grades; running again grades only the rest.",
    )
    grade.add_argument("assignment", help="module id, e.g. module1")
    grade.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel graders (default: the number of cores)",
    )
    grade.add_argument(
        "--dask",
        action="store_true",
        help="grade each student as a Dask task on an embedded LocalCluster of --workers",
    )
    grade.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on this Dask cluster, e.g. tcp://10.0.0.5:8786 (env: F0_DASK_SCHEDULER)",
    )
    grade.add_argument("--student", action="append", help="grade only these students")
    grade.add_argument("--force", action="store_true", help="regrade students already saved")
    grade.add_argument(
        "nbgrader_args",
        nargs="*",
        help="extra nbgrader options, after -- (e.g. -- --ExecuteWithinLimits.timeout=60)",
    )
    grade.set_defaults(func=cmd_autograde)
    srv = sub.add_parser(
        "serve",
        help="the course grading service: learners' checks without the suites (instructors)",
        description="Serves checks over HTTP (see docs/service.md): learners POST a notebook "
        "with their token and get f0 check's report; grading runs on Dask.",
    )
    srv.add_argument("--tokens", required=True, help="file of `learner token` lines")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8790, help="port (default 8790; 0: any)")
    srv.add_argument("--course", help="course folder (default: the one holding course.yaml)")
    srv.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (default: local)")
    srv.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="LocalCluster size")
    srv.add_argument("--rate", type=int, default=10, help="checks per learner per minute")
    srv.add_argument("--max-waiting", type=int, default=10, help="waiting checks per learner")
    srv.set_defaults(func=cmd_serve)
    stale = sub.add_parser("stale", help="fail when exercises/ or solutions/ are out of date")
    stale.set_defaults(func=cmd_stale)
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


if __name__ == "__main__":
    sys.exit(main())
