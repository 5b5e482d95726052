"""Rule traceability: every normative sentence of an exercise has an id, every case names ids.

An author labels each sentence that says what a function returns, raises, records, refuses or
must not change with a marker the learner sees, written after the sentence in the notebook's
markdown: ``[3.1-c]`` (exercise ``3.1``, rule ``c``). A hidden case names the rules it checks,
``@case("3.1", 0.5, "...", rules=("3.1-c",))``, and a failing case's message is shown with its
ids, so a learner finds the sentence. This module reads both sides and joins them::

    rules = notebook_rules(course.source_notebook(module))
    cases = suite_cases(course.suite_path(module))  # a suite file, or a folder's files
    table = coverage(rules, cases)   # rule -> the cases (and points) that check it

``tests/test_rules.py`` holds every module to "every rule has a case, every case names a rule
of its own exercise"; ``f0 rules module3`` prints the table.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from academy.errors import ManifestError
from academy.grading.cases import SUPPORT_MODULE, load_support
from academy.manifest import SUITE_TESTS, suite_support, suite_tests

__all__ = ["RULE_ID", "CaseInfo", "Coverage", "Rule", "coverage", "notebook_rules", "suite_cases"]

#: A rule id: the exercise ("3.1") and a letter or two ("c", "aa"), as in ``[3.1-c]``.
RULE_ID = r"\d+\.\d+-[a-z]{1,2}"
_MARKER = re.compile(rf"\[({RULE_ID})\]")
_SENTENCE_END = re.compile(r"(?:[.;!?](?=\s)|\n\s*\n|\n[*\-] |\n\d+\. |^)", re.S)


@dataclass(frozen=True)
class Rule:
    """One labelled sentence of a notebook."""

    id: str
    text: str  # the sentence before the marker, markdown stripped to one line

    @property
    def exercise(self) -> str:
        return self.id.rsplit("-", 1)[0]


@dataclass(frozen=True)
class CaseInfo:
    """A hidden case as its decorator describes it (no test is run to read it)."""

    name: str
    exercise: str
    points: float
    message: str
    rules: tuple[str, ...]
    critical: bool = False
    file: str = field(default="", compare=False)  # the test file it is in (a folder suite's)


@dataclass
class Coverage:
    """Rules joined with the cases that check them, and what does not join."""

    rules: dict[str, Rule]
    cases: list[CaseInfo]
    by_rule: dict[str, list[CaseInfo]] = field(default_factory=dict)

    @property
    def uncovered(self) -> list[str]:
        """Rules no case checks."""
        return [r for r in self.rules if not self.by_rule.get(r)]

    @property
    def unlabelled(self) -> list[str]:
        """Cases that name no rule."""
        return [c.name for c in self.cases if not c.rules]

    @property
    def unknown(self) -> list[str]:
        """``case: rule`` pairs naming a rule the notebook does not state."""
        return [f"{c.name}: {r}" for c in self.cases for r in c.rules if r not in self.rules]

    @property
    def foreign(self) -> list[str]:
        """``case: rule`` pairs naming another exercise's rule."""
        return [
            f"{c.name}: {r}"
            for c in self.cases
            for r in c.rules
            if r in self.rules and self.rules[r].exercise != c.exercise
        ]

    def problems(self) -> list[str]:
        """Every way this module breaks traceability, one line each (empty when it holds)."""
        lines = [f"rule {r} has no case" for r in self.uncovered]
        lines += [f"case {n} names no rule" for n in self.unlabelled]
        lines += [f"case {p} is not a rule of the notebook" for p in self.unknown]
        lines += [f"case {p} belongs to another exercise" for p in self.foreign]
        return lines

    def points(self, rule: str) -> float:
        return sum(c.points for c in self.by_rule.get(rule, []))


def _one_line(markdown: str) -> str:
    text = re.sub(r"^\s*(?:[*\-]|\d+\.)\s+", "", markdown)  # a list item's bullet
    text = re.sub(r"`|\*\*|</?(?:br|b|i|em|strong|sup|sub|code)\s*/?>", "", text)
    return " ".join(text.split())


def notebook_rules(path: Path) -> dict[str, Rule]:
    """The labelled rules of a notebook's markdown cells, in order; each id at most once."""
    nb = nbformat.read(path, as_version=4)
    rules: dict[str, Rule] = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        source = cell.source
        start = 0
        for match in _MARKER.finditer(source):
            rule_id = match.group(1)
            if rule_id in rules:
                raise ManifestError(f"{path}: rule [{rule_id}] is labelled twice")
            before = source[start : match.start()]
            # the sentence the marker ends: text after the last sentence break before it
            cuts = [m.end() for m in _SENTENCE_END.finditer(before.rstrip())]
            sentence = before[cuts[-1] if cuts else 0 :]
            rules[rule_id] = Rule(rule_id, _one_line(sentence) or _one_line(before))
            start = match.end()
    return rules


def suite_cases(path: Path) -> list[CaseInfo]:
    """The cases of a hidden suite, read from their ``@case`` markers by importing its test
    files (a folder suite's in the notebook's order, with its ``_support.py`` loaded first, as
    the grader loads it); a case name used twice is refused, since reports name cases."""
    tests = suite_tests(path)
    if not tests:
        raise ManifestError(f"{path}: no hidden suite (no such file, or no {SUITE_TESTS} in it)")
    support = suite_support(path)
    previous = sys.modules.pop(SUPPORT_MODULE, None)  # another suite's, or nobody's
    try:
        if support is not None:
            load_support(support)
        cases = [case for test in tests for case in _file_cases(test)]
    finally:
        sys.modules.pop(SUPPORT_MODULE, None)
        if previous is not None:
            sys.modules[SUPPORT_MODULE] = previous
    names = [c.name for c in cases]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ManifestError(f"{path}: case names used more than once: {', '.join(twice)}")
    return cases


def _file_cases(path: Path) -> list[CaseInfo]:
    """The cases one test file defines (not those it imports), in the order it defines them."""
    name = f"_f0_rules_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ManifestError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    cases = []
    for attr, value in vars(module).items():
        if getattr(value, "__module__", name) != name:
            continue  # imported from _support or elsewhere: another file's to report
        for mark in getattr(value, "pytestmark", []):
            if attr.startswith("test") and mark.name == "f0_case":
                kw = mark.kwargs
                cases.append(
                    CaseInfo(
                        attr,
                        kw["exercise"],
                        kw["points"],
                        kw["message"],
                        tuple(kw.get("rules", ())),
                        bool(kw.get("critical", False)),
                        path.name,
                    )
                )
    return cases


def coverage(rules: dict[str, Rule], cases: list[CaseInfo]) -> Coverage:
    """Join a notebook's rules with a suite's cases."""
    table = Coverage(rules, cases, {r: [] for r in rules})
    for c in cases:
        for r in c.rules:
            table.by_rule.setdefault(r, []).append(c)
    return table
