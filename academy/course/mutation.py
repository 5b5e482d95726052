"""Mutation testing of the reference solutions: does every small bug lose points?

The hand-written mutant catalogues (``tests/mutants``) hold the bugs their authors imagined.
This module asks Cosmic Ray (a maintained mutation tool) for every mutant of every solution
cell of a module's source notebook (each cell treated as a Python module), puts each mutant
into the released notebook in place of the reference, and grades it with the hidden suite:

1. ``first_failure`` grading of the mutant's own exercise: one failed case kills it;
2. a mutant that keeps full marks there is graded on the whole module (later exercises build
   on earlier cells); full marks everywhere means it *survived*.

Cosmic Ray's ``init`` finds the mutation sites and its ``mutate_code`` makes each mutant;
grading runs here, on the mutant's source, without rewriting any file. Results go to a
Cosmic Ray session database (``cr-report build/mutation/module3.sqlite`` works on it), to
``build/mutation/<module>.json``, and to the committed report
``autograder/mutation/<module>.md``. A survivor is either turned into a case, or recorded as
equivalent in ``autograder/mutation/<module>.yaml`` with a one-line reason, which the next
run reads::

    - cell: ex_3_1_solution
      operator: core/ReplaceComparisonOperator_Lt_LtE
      line: "if number < 1000:"          # the reference line, stripped
      becomes: "if number <= 1000:"      # the mutant's line, stripped
      reason: numbers never reach 1000 in a folder the exercise allows

``make mutation MODULE=module3`` runs one module (``python -m academy.course.mutation``).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from academy.course.solutions import reference_submission, solution_cells
from academy.errors import ManifestError, UsageError
from academy.manifest import Course, Module

__all__ = [
    "EXCLUDED_OPERATORS",
    "Equivalent",
    "Mutant",
    "MutationReport",
    "generate_mutants",
    "grade_mutant",
    "load_equivalents",
    "run_mutation",
]

#: Operators not run, with why. None of them would make a kill rate look better: the
#: replacements by bit and shift operators and by ``**`` are killed by any check that runs
#: the line (or, for ``**``, can compute for minutes); ``is``/``==`` swaps are equivalent on
#: the ``None`` and small-int singletons the solutions compare.
EXCLUDED_OPERATORS: dict[str, str] = {
    r"core/ReplaceBinaryOperator_\w+_(RShift|LShift|BitOr|BitAnd|BitXor|Pow)$": (
        "an arithmetic operator turned into a bit, shift or power operator: killed by any "
        "check that runs the line, or a computation of minutes"
    ),
    r"core/ReplaceComparisonOperator_(Is_Eq|IsNot_NotEq|Eq_Is|NotEq_IsNot)$": (
        "is/== swaps: equivalent on None and the small ints and strings the solutions compare"
    ),
}

_CELL_EXERCISE = re.compile(r"^ex_(\d+)_(\d+)_")


@dataclass(frozen=True)
class Mutant:
    """One Cosmic Ray mutation of one solution cell."""

    cell: str
    exercise: str
    operator: str
    occurrence: int
    line: int  # 1-based line of the cell the mutation changes
    before: str  # that line in the reference, stripped
    after: str  # the same line in the mutant, stripped
    source: str = field(repr=False, compare=False)
    nth: int = 1  # the same change of the same text elsewhere in the cell: 2, 3, ...

    @property
    def key(self) -> str:
        """The mutant's id within one version of the reference (operator occurrence)."""
        return f"{self.cell}:{self.operator}:{self.occurrence}"

    @property
    def signature(self) -> tuple[str, str, str, str, int]:
        """What an equivalence record matches: stable while the lines themselves stay
        (``nth`` tells identical lines of one cell apart, in reading order)."""
        return (self.cell, self.operator, self.before, self.after, self.nth)


@dataclass(frozen=True)
class Equivalent:
    """A survivor recorded as equivalent to the reference, with the reason."""

    cell: str
    operator: str
    line: str
    becomes: str
    reason: str
    nth: int = 1  # which of several identical lines of the cell, in reading order

    @property
    def signature(self) -> tuple[str, str, str, str, int]:
        return (self.cell, self.operator, self.line, self.becomes, self.nth)


@dataclass
class MutationReport:
    """Outcomes of one module's run."""

    module: str
    generated: int
    excluded: int
    outcomes: dict[str, str]  # mutant key -> killed | timeout | survived | equivalent
    mutants: dict[str, Mutant]
    seconds: float
    tool: str

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.outcomes.values() if v == outcome)

    @property
    def killed_share(self) -> float:
        """Killed (timeouts included) among the graded mutants that are not equivalent."""
        live = len(self.outcomes) - self.count("equivalent")
        return (self.count("killed") + self.count("timeout")) / live if live else 1.0

    def survivors(self) -> list[Mutant]:
        return [self.mutants[k] for k, v in self.outcomes.items() if v == "survived"]

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "tool": self.tool,
            "generated": self.generated,
            "excluded": self.excluded,
            "seconds": round(self.seconds, 1),
            "outcomes": self.outcomes,
            "mutants": {
                k: {f: v for f, v in asdict(m).items() if f != "source"}
                for k, m in self.mutants.items()
            },
        }


# ----------------------------------------------------------------------------- mutants
def cell_exercise(module: Module, cell: str) -> str:
    match = _CELL_EXERCISE.match(cell)
    exercise = f"{match.group(1)}.{match.group(2)}" if match else ""
    if exercise not in {e.id for e in module.exercises}:
        raise ManifestError(f"{module.id}: solution cell {cell} names no exercise of the module")
    return exercise


def excluded(operator: str) -> bool:
    return any(re.match(pattern, operator) for pattern in EXCLUDED_OPERATORS)


def generate_mutants(course: Course, module: Module) -> tuple[list[Mutant], int]:
    """Every mutant Cosmic Ray makes of the module's solution cells, and how many were
    left out by ``EXCLUDED_OPERATORS``."""
    import cosmic_ray.plugins
    from cosmic_ray.commands.init import _all_work_items
    from cosmic_ray.mutating import mutate_code

    mutants: list[Mutant] = []
    left_out = 0
    with tempfile.TemporaryDirectory(prefix="f0-mutation-") as tmp:
        for cell, source in solution_cells(course, module).items():
            path = Path(tmp) / f"{cell}.py"
            path.write_text(source + "\n", encoding="utf-8")
            exercise = cell_exercise(module, cell)
            reference = source.split("\n")
            for item in _all_work_items([path], {}):
                (spec,) = item.mutations
                if excluded(spec.operator_name):
                    left_out += 1
                    continue
                operator = cosmic_ray.plugins.get_operator(spec.operator_name)()
                mutated = mutate_code(source + "\n", operator, spec.occurrence)
                if mutated is None:
                    continue
                mutated = mutated[:-1] if mutated.endswith("\n") else mutated
                line = spec.start_pos[0]
                before, after = changed_lines(reference, mutated.split("\n"), line)
                mutants.append(
                    Mutant(
                        cell,
                        exercise,
                        spec.operator_name,
                        spec.occurrence,
                        line,
                        before,
                        after,
                        mutated,
                    )
                )
    seen: Counter[tuple[str, str, str, str]] = Counter()
    numbered = []
    for m in mutants:
        seen[m.signature[:4]] += 1
        numbered.append(replace(m, nth=seen[m.signature[:4]]))
    return numbered, left_out


def changed_lines(reference: list[str], mutated: list[str], line: int) -> tuple[str, str]:
    """What the mutation at ``line`` (1-based) did: the reference line and the mutant's, each
    stripped; a statement the mutant drops is ``(removed)``, a multi-line one is joined
    with `` / ``."""
    if len(mutated) == len(reference):
        pairs = [(a.strip(), b.strip()) for a, b in zip(reference, mutated, strict=True) if a != b]
        if pairs:
            return " / ".join(a for a, _ in pairs), " / ".join(b for _, b in pairs)
        return "", ""
    if len(mutated) < len(reference) and line <= len(reference):
        # a statement removed (with the blank and comment lines before it, which the parser
        # keeps with it): name the statement's own line
        return reference[line - 1].strip(), "(removed)"
    matcher = difflib.SequenceMatcher(a=reference, b=mutated, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            old = " / ".join(x.strip() for x in reference[i1:i2]) or "(nothing)"
            new = " / ".join(x.strip() for x in mutated[j1:j2]) or "(removed)"
            return old, new
    return "", ""


def diff(mutant: Mutant, reference: str) -> str:
    return "\n".join(
        difflib.unified_diff(
            reference.split("\n"), mutant.source.split("\n"), mutant.cell, mutant.cell, lineterm=""
        )
    )


# ----------------------------------------------------------------------------- grading
def grade_mutant(course: Course, module: Module, mutant: Mutant) -> str:
    """``killed``, ``timeout`` (killed by a time limit) or ``survived``."""
    from academy.grading.suite_runner import run_hidden_suite

    nb = reference_submission(course, module, {mutant.cell: mutant.source})
    for only, first in (({mutant.exercise}, True), (None, False)):
        report = run_hidden_suite(course, module, nb, only=only, first_failure=first, preload=True)
        if report.score < sum(r.exercise.points for r in report.exercises.values()):
            timed_out = any(
                c.kind == "timeout" for r in report.exercises.values() for c in r.cases
            ) or any("did not finish" in p for r in report.exercises.values() for p in r.problems)
            return "timeout" if timed_out else "killed"
    return "survived"


# ----------------------------------------------------------------------------- records
def records_dir(course: Course) -> Path:
    return course.root / "autograder" / "mutation"


def load_equivalents(course: Course, module: Module) -> list[Equivalent]:
    path = records_dir(course) / f"{module.id}.yaml"
    if not path.is_file():
        return []
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    records = []
    for number, entry in enumerate(raw, 1):
        try:
            record = Equivalent(**entry)
        except TypeError:
            raise ManifestError(
                f"{path}: entry {number} is not cell/operator/line/becomes/reason"
            ) from None
        if not record.reason.strip():
            raise ManifestError(f"{path}: entry {number} gives no reason")
        records.append(record)
    return records


def run_mutation(
    course: Course,
    module: Module,
    *,
    jobs: int = 2,
    sample: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    survivors_only: bool = False,
) -> MutationReport:
    """Grade every mutant of ``module`` (or a seeded ``sample`` of them)."""
    import cosmic_ray

    started = time.perf_counter()
    mutants, left_out = generate_mutants(course, module)
    generated = len(mutants) + left_out
    equivalent = {e.signature for e in load_equivalents(course, module)}
    chosen = mutants
    if survivors_only:  # re-grade what the committed report says survived
        listed = report_survivors(course, module)
        chosen = [m for m in mutants if m.signature in listed]
    elif sample is not None and sample < len(mutants):
        chosen = random.Random(seed).sample(mutants, sample)
    outcomes: dict[str, str] = {}
    to_grade = []
    for m in chosen:
        if m.signature in equivalent:
            outcomes[m.key] = "equivalent"
        else:
            to_grade.append(m)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for m, outcome in zip(
            to_grade, pool.map(lambda m: grade_mutant(course, module, m), to_grade), strict=True
        ):
            outcomes[m.key] = outcome
            done += 1
            if progress:
                progress(done, len(to_grade))
    ordered = {m.key: outcomes[m.key] for m in chosen}
    return MutationReport(
        module.id,
        generated,
        left_out,
        ordered,
        {m.key: m for m in chosen},
        time.perf_counter() - started,
        f"cosmic-ray {getattr(cosmic_ray, '__version__', '8')}",
    )


def write_report(course: Course, report: MutationReport, build: Path) -> Path:
    """``build/mutation/<module>.json`` and the committed ``autograder/mutation/<module>.md``."""
    build.mkdir(parents=True, exist_ok=True)
    (build / f"{report.module}.json").write_text(
        json.dumps(report.to_json(), indent=1), encoding="utf-8"
    )
    module = course.module(report.module)
    references = solution_cells(course, module)
    by_exercise: Counter[str] = Counter()
    killed_by_exercise: Counter[str] = Counter()
    for key, outcome in report.outcomes.items():
        m = report.mutants[key]
        if outcome != "equivalent":
            by_exercise[m.exercise] += 1
            killed_by_exercise[m.exercise] += outcome in ("killed", "timeout")
    lines = [
        f"# Mutation report: {report.module}",
        "",
        f"Made by `make mutation MODULE={report.module}` with {report.tool}; "
        f"run time {report.seconds:.0f} s. Fingerprint of the reference solutions: "
        f"`{fingerprint(references)}`.",
        "",
        "| generated | excluded operators | graded | killed | timed out | equivalent "
        "| survived | killed share |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {report.generated} | {report.excluded} | {len(report.outcomes)} "
        f"| {report.count('killed')} | {report.count('timeout')} "
        f"| {report.count('equivalent')} | {report.count('survived')} "
        f"| {100 * report.killed_share:.1f}% |",
        "",
        "Killed share: killed and timed-out mutants among those not recorded as equivalent.",
        "",
        "| exercise | mutants (not equivalent) | killed |",
        "| --- | ---: | ---: |",
        *(
            f"| {ex} | {by_exercise[ex]} | {killed_by_exercise[ex]} |"
            for ex in sorted(by_exercise, key=lambda e: [int(p) for p in e.split(".")])
        ),
        "",
        "## Survivors",
        "",
    ]
    survivors = report.survivors()
    if not survivors:
        lines.append("None.")
    for m in survivors:
        again = f" (nth: {m.nth})" if m.nth > 1 else ""
        lines.append(f"- `{m.cell}` line {m.line}, {m.operator}: `{m.before}` → `{m.after}`{again}")
    lines += ["", "## Equivalent (autograder/mutation/" + f"{report.module}.yaml)", ""]
    records = load_equivalents(course, module)
    lines += [
        f"- `{e.cell}`: `{e.line}` → `{e.becomes}`{f' (nth: {e.nth})' if e.nth > 1 else ''}: "
        f"{e.reason}"
        for e in records
    ] or ["None."]
    path = records_dir(course) / f"{report.module}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def merge_into_last_run(
    course: Course, module: Module, regraded: MutationReport, build: Path
) -> MutationReport:
    """The last full run's outcomes with the re-graded survivors' new ones (and the current
    equivalence records) in place: a report for the whole module without grading it all."""
    path = build / f"{module.id}.json"
    if not path.is_file():
        raise UsageError(f"{path} is missing: run the whole module first")
    last = json.loads(path.read_text(encoding="utf-8"))
    mutants, left_out = generate_mutants(course, module)
    if set(last["outcomes"]) != {m.key for m in mutants}:
        raise UsageError(f"{path} is from another version of the reference: run the module")
    equivalent = {e.signature for e in load_equivalents(course, module)}
    outcomes = {}
    for m in mutants:
        outcome = regraded.outcomes.get(m.key, last["outcomes"][m.key])
        outcomes[m.key] = "equivalent" if m.signature in equivalent else outcome
    return MutationReport(
        module.id,
        len(mutants) + left_out,
        left_out,
        outcomes,
        {m.key: m for m in mutants},
        float(last.get("seconds", 0)) + regraded.seconds,
        f"{regraded.tool} (the full run, then its survivors graded again)",
    )


def fingerprint(references: dict[str, str]) -> str:
    """A short hash of the solution cells: a report whose fingerprint differs is stale."""
    text = json.dumps(references, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def report_survivors(course: Course, module: Module) -> set[tuple[str, str, str, str, int]]:
    """The survivors the committed report lists, as mutant signatures."""
    path = records_dir(course) / f"{module.id}.md"
    if not path.is_file():
        return set()
    text = path.read_text(encoding="utf-8")
    block = text.split("## Survivors", 1)[-1].split("## Equivalent", 1)[0]
    found = set()
    for line in block.splitlines():
        match = re.match(r"- `(\w+)` line \d+, (\S+): `(.*)` → `(.*?)`(?: \(nth: (\d+)\))?$", line)
        if match:
            found.add((match[1], match[2], match[3], match[4], int(match[5] or 1)))
    return found


def report_fingerprint(course: Course, module: Module) -> str | None:
    path = records_dir(course) / f"{module.id}.md"
    if not path.is_file():
        return None
    match = re.search(r"Fingerprint of the reference solutions: `(\w+)`", path.read_text("utf-8"))
    return match.group(1) if match else None


# ----------------------------------------------------------------------------- command
def main(argv: Iterable[str] | None = None) -> int:
    from academy import manifest

    parser = argparse.ArgumentParser(
        prog="python -m academy.course.mutation",
        description="grade every Cosmic Ray mutant of a module's reference solutions",
    )
    parser.add_argument("modules", nargs="+", help="module ids, e.g. module3")
    parser.add_argument("--jobs", type=int, default=2, help="mutants graded at once")
    parser.add_argument("--sample", type=int, help="grade only this many (seeded) mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="grade again only the survivors the committed report lists (no report written)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="with --survivors: merge the new outcomes into the last full run's "
        "build/mutation/<module>.json and write the report (cases were only added or "
        "strengthened since, so what was killed stays killed)",
    )
    parser.add_argument("--build", default="build/mutation", help="where the JSON goes")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        course = manifest.load()
        modules = [course.module(m) for m in args.modules]
    except (ManifestError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for module in modules:

        def tick(done: int, total: int, name: str = module.id) -> None:
            if done == total or done % 25 == 0:
                print(f"{name}: {done}/{total} graded", flush=True)

        report = run_mutation(
            course,
            module,
            jobs=args.jobs,
            sample=args.sample,
            seed=args.seed,
            progress=tick,
            survivors_only=args.survivors,
        )
        if args.survivors and args.update:
            report = merge_into_last_run(course, module, report, course.root / args.build)
        if args.sample is None and (not args.survivors or args.update):
            path = write_report(course, report, course.root / args.build)
            print(f"{module.id}: report in {path}")
        print(
            f"{module.id}: {len(report.outcomes)} graded, {report.count('killed')} killed, "
            f"{report.count('timeout')} timed out, {report.count('equivalent')} equivalent, "
            f"{report.count('survived')} survived: {100 * report.killed_share:.1f}% killed "
            f"({report.seconds:.0f} s)"
        )
        for m in report.survivors():
            print(f"  survived: {m.cell} line {m.line} {m.operator}: {m.before!r} -> {m.after!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
