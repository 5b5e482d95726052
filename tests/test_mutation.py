"""Mutation testing (academy/course/mutation.py): Cosmic Ray's mutants of the reference solutions.

The full run (``make mutation MODULE=...``) writes ``autograder/mutation/<module>.md``. Here:
the mutants are made as described, every committed report is current and meets the goal
(at least 95% of the non-equivalent mutants killed), every equivalence record has a reason
and still matches a mutant, and a sample of each module's mutants, chosen by the reference's
fingerprint, is graded again and must come out as its report says (two per module in make test).
"""

from __future__ import annotations

import ast
import functools
import random
import re

import pytest
from course_tools import course

from academy.course import mutation
from academy.course.mutation import (
    excluded,
    fingerprint,
    generate_mutants,
    grade_mutant,
    load_equivalents,
    report_fingerprint,
    solution_cells,
)

COURSE = course()
SAMPLE = 2  # mutants per module graded again in make test
# one xdist worker runs the file, so each module's mutants are made once (module 8's take ~30 s)
pytestmark = pytest.mark.xdist_group("mutation")
GOAL = 0.95


@functools.cache
def mutants_of(module_id: str):
    return generate_mutants(COURSE, COURSE.module(module_id))


@pytest.fixture(scope="module")
def module1_mutants():
    return mutants_of("module1")


def test_mutants_come_from_cosmic_ray_and_change_one_line(module1_mutants):
    mutants, left_out = module1_mutants
    references = solution_cells(COURSE, COURSE.module("module1"))
    assert len(mutants) > 50 and left_out > 0
    assert {m.cell for m in mutants} <= set(references) and len({m.cell for m in mutants}) >= 4
    assert len({m.key for m in mutants}) == len(mutants)
    for m in mutants:
        assert m.operator.startswith("core/") and not excluded(m.operator)
        assert m.source != references[m.cell]
        ast.parse(m.source)  # Cosmic Ray's mutants are valid Python
        assert m.before != m.after
        assert all(part in references[m.cell] for part in m.before.split(" / "))
        assert m.exercise == m.cell.split("_")[1] + "." + m.cell.split("_")[2]


def test_an_obvious_mutant_is_killed_and_the_reference_survives(module1_mutants):
    mutants, _ = module1_mutants
    module = COURSE.module("module1")
    negated = next(m for m in mutants if m.operator == "core/AddNot")
    assert grade_mutant(COURSE, module, negated) in ("killed", "timeout")
    reference = solution_cells(COURSE, module)[negated.cell]
    unchanged = mutation.Mutant(negated.cell, negated.exercise, "none", 0, 1, "", "", reference)
    assert grade_mutant(COURSE, module, unchanged) == "survived"


@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_report_is_current_and_meets_the_goal(module):
    path = mutation.records_dir(COURSE) / f"{module.id}.md"
    assert path.is_file(), f"no mutation report: run make mutation MODULE={module.id}"
    current = fingerprint(solution_cells(COURSE, module))
    assert report_fingerprint(COURSE, module) == current, (
        f"{path} is stale: the reference solutions changed; run make mutation MODULE={module.id}"
    )
    share = re.search(r"\| ([\d.]+)% \|", path.read_text(encoding="utf-8"))
    assert share and float(share.group(1)) >= 100 * GOAL


@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_equivalence_records_give_reasons_and_match_a_mutant(module):
    records = load_equivalents(COURSE, module)
    if not records:
        return
    signatures = {m.signature for m in mutants_of(module.id)[0]}
    for record in records:
        assert len(record.reason.split()) >= 4, f"say why {record} is equivalent"
        assert record.signature in signatures, f"{record} matches no mutant any more"


@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_a_sample_of_mutants_grades_as_its_report_says(module):
    survivors = mutation.report_survivors(COURSE, module)
    equivalent = {e.signature for e in load_equivalents(COURSE, module)}
    mutants, _ = mutants_of(module.id)
    seed = fingerprint(solution_cells(COURSE, module))
    for m in random.Random(seed).sample(mutants, SAMPLE):
        if m.signature in equivalent:
            continue
        expected = "survived" if m.signature in survivors else "killed"
        got = grade_mutant(COURSE, module, m)
        assert got.replace("timeout", "killed") == expected, (
            f"{m.cell} line {m.line} {m.operator}: {m.before!r} -> {m.after!r} {got}; "
            f"the report says {expected}"
        )
