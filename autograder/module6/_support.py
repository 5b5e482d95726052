"""Module 6's hidden suite (integration with the runner): what several exercises share, the
recipe helpers and the ``scratch`` and ``orders`` fixtures. Instructor-only: never released.

The suite is this folder: one file per exercise, in the notebook's order
(``test_6_1_pipeline.py``, ``test_6_2_recovery.py``, ``test_6_3_configuration.py``), each with
the helpers only it uses, and this module, which the grader loads as ``_support`` before them
(``academy.grading.plugin``): the exercise files import its helpers and use its fixtures.

Every case checks sentences of the notebook's exercise text and says, in its message, which
behaviour is wrong. The learner's scriptlets run through real recipes with framework0's
runner, inside the learner's worker process: the tests write recipe and data files into a
temporary folder and call ``learner.run_recipe(path, scriptlets={...})``, passing the
learner's classes (``Remote`` proxies) in the mapping. Every comparison happens here, on plain
data read back from the context.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from academy.grading.cases import raises

PIPELINE = (
    "DataLoaderScriptlet",
    "DataCleanerScriptlet",
    "DataTransformerScriptlet",
    "DataExporterScriptlet",
)

ORDERS_CSV = """order_id,region,units,amount
1,north,3,45.5
2,south,1,120
3,,2,30.5
4,east,abc,60
5,west,0,10
6,east,250,999
2,south,1,120
7,west,5,75.25
8,north,7,210
"""

ORDERS = [
    {"order_id": 1, "region": "north", "units": 3, "amount": 45.5},
    {"order_id": 2, "region": "south", "units": 1, "amount": 120},
    {"order_id": 3, "region": None, "units": 2, "amount": 30.5},
    {"order_id": 4, "region": "east", "units": "abc", "amount": 60},
    {"order_id": 5, "region": "west", "units": 0, "amount": 10},
    {"order_id": 6, "region": "east", "units": 250, "amount": 999},
    {"order_id": 2, "region": "south", "units": 1, "amount": 120},
    {"order_id": 7, "region": "west", "units": 5, "amount": 75.25},
    {"order_id": 8, "region": "north", "units": 7, "amount": 210},
]
KEPT = [ORDERS[i] for i in (0, 1, 7, 8)]


# --------------------------------------------------------------------------- helpers
def write_recipe(folder: Path, steps: list[dict[str, Any]], name: str = "recipe.yaml") -> str:
    """A recipe of notebook steps, idx in list order unless given; returns its path."""
    full = [{"idx": i, "module": "notebook", **step} for i, step in enumerate(steps, start=1)]
    path = folder / name
    path.write_text(yaml.safe_dump({"steps": full}, sort_keys=False), encoding="utf-8")
    return str(path)


def step(name: str, function: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "function": function, **fields}


def classes(learner, names, extra=None):
    return {**{n: getattr(learner, n) for n in names}, **(extra or {})}


def run(learner, path, names=PIPELINE, extra=None, **options):
    """Run a recipe with framework0's runner in the learner's process; returns the context."""
    return learner.run_recipe(path, scriptlets=classes(learner, names, extra), **options)


def run_fails(learner, path, error, names=PIPELINE, extra=None, detail="", **options):
    """Run a recipe that must stop with ``error``; returns (context, LearnerException)."""
    ctx = learner.Context()
    exc = raises(
        lambda: run(learner, path, names, extra, ctx=ctx, **options),
        error,
        detail or f"the run must raise {error}",
    )
    return ctx, exc


def writers(history) -> dict[str, set]:
    """key -> the set of ``step`` values that wrote it."""
    out: dict[str, set] = {}
    for entry in history:
        out.setdefault(entry["key"], set()).add(entry["step"])
    return out


def user_data(ctx) -> dict[str, Any]:
    return {k: v for k, v in ctx.to_dict().items() if not k.startswith("run.")}


@pytest.fixture
def scratch(learner) -> Iterator[Path]:
    """A new, empty folder that this process and the learner's worker both see.

    The worker may run in a sandbox that sees only its own working folder (bound at the same
    path, with a private /tmp), so the folder is made inside it.
    """
    learner.has("run_recipe")  # starts the worker, and with it its working folder
    path = Path(tempfile.mkdtemp(prefix="module6-", dir=learner.workdir))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def orders(scratch: Path) -> Path:
    (scratch / "in").mkdir()
    (scratch / "in" / "orders.csv").write_text(ORDERS_CSV, encoding="utf-8")
    return scratch


LOAD = step("load", "DataLoaderScriptlet", args={"source": "in/orders.csv"})
CLEAN_ARGS = {
    "required": ["order_id", "region"],
    "numeric": ["units", "amount"],
    "ranges": {"units": [1, 100]},
    "drop_duplicates": True,
}


# =========================================================================== exercise 6.2
def status(step_name, after, before="running"):
    return {
        "step": "runner",
        "key": f"run.steps.{step_name}.status",
        "before": before,
        "after": after,
    }


def entry(who, key, before, after):
    return {"step": who, "key": key, "before": before, "after": after}
