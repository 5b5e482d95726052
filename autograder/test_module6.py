"""Hidden suite for module 6 (Integration with the runner). Instructor-only: never released.

Every case checks sentences of the notebook's exercise text and says, in its message, which
behaviour is wrong. The learner's scriptlets run through real recipes with framework0's
runner, inside the learner's worker process: the tests write recipe and data files into a
temporary folder and call ``learner.run_recipe(path, scriptlets={...})``, passing the
learner's classes (``Remote`` proxies) in the mapping. Every comparison happens here, on plain
data read back from the context.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from academy.bridge.client import LearnerException, expr
from academy.grading.cases import case, changed_in_worker, check, confirm, raises, read_back

PIPELINE = (
    "DataLoaderScriptlet",
    "DataCleanerScriptlet",
    "DataTransformerScriptlet",
    "DataExporterScriptlet",
)
CONFIG = ("ConfigLoaderScriptlet", "ConfigValidatorScriptlet", "ConfigApplierScriptlet")

# A scriptlet built in the worker (not the learner's): it writes params['writes'] into the
# context, then fails by returning 3. What a crash in the middle of a step leaves behind.
CORRUPT = expr(
    "type('Corrupt', (__import__('framework0').BaseScriptlet,), {'run': "
    "lambda self, ctx, params: [ctx.set(k, v, who=params['_step']) "
    "for k, v in params['writes'].items()] and 3})"
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


def seeded(learner, items, who="grader"):
    ctx = learner.Context()
    for key, value in items.items():
        ctx.set(key, value, who=who)
    return ctx


def writers(history) -> dict[str, set]:
    """key -> the set of ``step`` values that wrote it."""
    out: dict[str, set] = {}
    for entry in history:
        out.setdefault(entry["key"], set()).add(entry["step"])
    return out


def user_data(ctx) -> dict[str, Any]:
    return {k: v for k, v in ctx.to_dict().items() if not k.startswith("run.")}


def close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


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


# =========================================================================== exercise 6.1
@case(
    "6.1",
    0.5,
    "file_format(), columns_of() and is_number() must behave as the helper list says "
    "(given format first, else the suffix in lower case; keys in first-seen order; bool "
    "is not a number)",
    rules=("6.1-f", "6.1-g", "6.1-h", "6.1-i"),
)
def test_6_1_small_helpers(learner):
    for args, expected in [
        (("data/Orders.CSV",), "csv"),
        (("a.json",), "json"),
        (("x.txt", "json"), "json"),
        (("x.json", "csv"), "csv"),
    ]:
        got = learner.file_format(*args)
        check(got == expected, f"file_format{args!r} returned {got!r}")
    for args in [("x.txt",), ("x",), ("x.csv", "xml")]:
        raises(lambda args=args: learner.file_format(*args), "ValueError", f"file_format{args!r}")
    got = learner.columns_of([{"a": 1, "b": 2}, {"c": 3, "a": 4}, {}, {"d": None, "b": 0}])
    check(got == ["a", "b", "c", "d"], f"columns_of returned {got!r}")
    check(learner.columns_of([]) == [], "columns_of([]) must be []")
    numbers = [learner.is_number(v) for v in (0, -3, 2.5, True, False, "1", None, [1])]
    check(
        numbers == [True, True, True, False, False, False, False, False],
        f"is_number of 0, -3, 2.5, True, False, '1', None, [1] gave {numbers!r}",
    )


@case(
    "6.1",
    0.75,
    "read_records(path, 'csv') must read the file as UTF-8 and convert each cell: blank -> "
    "None, int, finite float, else the text unchanged; short rows get None",
    rules=("6.1-j", "6.1-k", "6.1-l", "6.1-m"),
)
def test_6_1_read_csv(learner, scratch):
    path = scratch / "cells.csv"
    path.write_text(
        "id,name,score,ratio,note\n"
        "1,Ann,90,0.5,hello\n"
        "2, Bob ,,-1.5e2,nan\n"
        "3,Cy,007,1e3,   \n"
        "4,Dee\n"
        "5,Zoë Ünal, 42 ,1e400,-inf\n",
        encoding="utf-8",
    )
    got = learner.read_records(str(path), "csv")
    expected = [
        {"id": 1, "name": "Ann", "score": 90, "ratio": 0.5, "note": "hello"},
        {"id": 2, "name": " Bob ", "score": None, "ratio": -150.0, "note": "nan"},
        {"id": 3, "name": "Cy", "score": 7, "ratio": 1000.0, "note": None},
        {"id": 4, "name": "Dee", "score": None, "ratio": None, "note": None},
        # int(' 42 ') succeeds; 1e400 and -inf are floats, but not finite ones
        {"id": 5, "name": "Zoë Ünal", "score": 42, "ratio": "1e400", "note": "-inf"},
    ]
    check(got == expected, f"it returned {got!r}")
    types = [[type(v).__name__ for v in r.values()] for r in got] if got == expected else []
    check(
        types
        == [
            ["int", "str", "int", "float", "str"],
            ["int", "str", "NoneType", "float", "str"],
            ["int", "str", "int", "float", "NoneType"],
            ["int", "str", "NoneType", "NoneType", "NoneType"],
            ["int", "str", "int", "str", "str"],
        ],
        f"the values have the wrong types (int, float, str, None): {types}",
    )
    check(
        isinstance(got, list)
        and [list(r) for r in got][0] == ["id", "name", "score", "ratio", "note"],
        "the keys of a record must follow the header order",
    )
    (scratch / "empty.csv").write_text("a,b\n", encoding="utf-8")
    check(learner.read_records(str(scratch / "empty.csv"), "csv") == [], "a header-only CSV")


@case(
    "6.1",
    0.5,
    "read_records() must return a JSON list of objects as loaded, and raise ValueError for "
    "other JSON, for a CSV row longer than the header and for an unknown format",
    rules=("6.1-n", "6.1-o", "6.1-p", "6.1-q"),
)
def test_6_1_read_json_and_errors(learner, scratch):
    data = [{"a": 1, "b": [1, {"c": None}]}, {"z": "text", "f": 2.5}, {}]
    (scratch / "ok.json").write_text(json.dumps(data), encoding="utf-8")
    got = learner.read_records(str(scratch / "ok.json"), "json")
    check(got == data, f"it returned {got!r}")
    bad = {
        "object.json": '{"a": 1}',
        "mixed.json": '[{"a": 1}, 2]',
        "long.csv": "a,b\n1,2\n3,4,5\n",
    }
    for name, text in bad.items():
        (scratch / name).write_text(text, encoding="utf-8")
        fmt = name.rsplit(".", 1)[1]
        raises(
            lambda name=name, fmt=fmt: learner.read_records(str(scratch / name), fmt),
            "ValueError",
            f"reading a {fmt} file holding {text!r}",
        )
    raises(
        lambda: learner.read_records(str(scratch / "ok.json"), "xml"),
        "ValueError",
        "read_records with format 'xml'",
    )


@case(
    "6.1",
    0.75,
    "DataLoaderScriptlet must set data.raw, data.count, data.columns and data.source (in that "
    "order, who = the step name), reading source relative to the recipe's folder",
    rules=("6.1-a", "6.1-b", "6.1-c", "6.1-d", "6.1-e", "6.1-r", "6.1-t"),
)
def test_6_1_loader_in_recipe(learner, orders):
    path = write_recipe(
        orders, [step("ingest", "DataLoaderScriptlet", args={"source": "in/orders.csv"})]
    )
    ctx = run(learner, path)
    data = user_data(ctx)
    check(data.get("data.raw") == ORDERS, f"data.raw was {data.get('data.raw')!r}")
    check(data.get("data.count") == len(ORDERS), f"data.count was {data.get('data.count')!r}")
    check(
        data.get("data.columns") == ["order_id", "region", "units", "amount"],
        f"data.columns was {data.get('data.columns')!r}",
    )
    source = data.get("data.source")
    check(
        isinstance(source, dict)
        and set(source) == {"path", "format"}
        and source["format"] == "csv"
        and Path(str(source["path"])) == (orders / "in" / "orders.csv").resolve(),
        f"data.source was {source!r}",
    )
    history = [e for e in ctx.get_history() if e["step"] != "runner"]
    seen = [(e["step"], e["key"]) for e in history]
    expected = [("ingest", k) for k in ("data.raw", "data.count", "data.columns", "data.source")]
    check(seen == expected, f"the history recorded (who, key) = {seen!r}")
    check(ctx.get("run.steps.ingest.status") == "ok", "the step must finish ok")

    # an explicit format wins over the file's suffix
    (orders / "in" / "records.txt").write_text('[{"x": 1}, {"y": 2}]', encoding="utf-8")
    path = write_recipe(
        orders,
        [step("load", "DataLoaderScriptlet", args={"source": "in/records.txt", "format": "json"})],
        "txt.yaml",
    )
    data = user_data(run(learner, path))
    check(
        data.get("data.raw") == [{"x": 1}, {"y": 2}] and data.get("data.columns") == ["x", "y"],
        f"with format: json on a .txt file, data.raw was {data.get('data.raw')!r}",
    )
    check(data.get("data.source", {}).get("format") == "json", "data.source's format")


@case(
    "6.1",
    0.5,
    "DataLoaderScriptlet must refuse to run without a source, or with a missing source file "
    "or an unknown format, so the runner reports StepNotRunError (status not_run), not "
    "StepFailedError",
    rules=("6.1-r", "6.1-s"),
)
def test_6_1_loader_cannot_run(learner, orders):
    (orders / "in" / "notes.txt").write_text("a,b\n1,2\n", encoding="utf-8")
    path = write_recipe(
        orders,
        [step("load", "DataLoaderScriptlet", args={"source": "in/notes.txt", "format": "csv"})],
        "ok.yaml",
    )
    ctx = run(learner, path)
    check(ctx.get("data.raw") == [{"a": 1, "b": 2}], "an existing file with a format must load")
    for source in ("in/absent.csv", "in/notes.txt"):
        path = write_recipe(orders, [step("load", "DataLoaderScriptlet", args={"source": source})])
        ctx, _ = run_fails(
            learner, path, "StepNotRunError", detail=f"loading {source!r} must be refused"
        )
        status = ctx.get("run.steps.load.status")
        check(status == "not_run", f"loading {source!r}: the step's status was {status!r}")
        check("data.raw" not in ctx.keys(), f"loading {source!r} must set nothing")
    path = write_recipe(orders, [step("load", "DataLoaderScriptlet", args={"format": "csv"})])
    run_fails(learner, path, "StepNotRunError", detail="a load step without its source arg")


@case(
    "6.1",
    1.0,
    "DataCleanerScriptlet must remove records by the first rule they break (required, "
    "numeric, range, duplicate), keep the others in order, and set data.clean, "
    "data.removed_count and clean.stats",
    rules=("6.1-b", "6.1-c", "6.1-w", "6.1-x", "6.1-y", "6.1-z", "6.1-aa", "6.1-ab", "6.1-ac"),
)
def test_6_1_cleaner_rules(learner, orders):
    path = write_recipe(
        orders, [LOAD, step("clean", "DataCleanerScriptlet", depends_on=["load"], args=CLEAN_ARGS)]
    )
    ctx = run(learner, path)
    data = user_data(ctx)
    check(data.get("data.clean") == KEPT, f"data.clean was {data.get('data.clean')!r}")
    check(
        data.get("data.removed_count") == 5,
        f"data.removed_count was {data.get('data.removed_count')!r}",
    )
    stats = {
        "input": 9,
        "kept": 4,
        "removed": {"required": 1, "numeric": 1, "range": 2, "duplicate": 1},
    }
    check(data.get("clean.stats") == stats, f"clean.stats was {data.get('clean.stats')!r}")
    seen = [(e["step"], e["key"]) for e in ctx.get_history() if e["step"] == "clean"]
    check(
        seen
        == [("clean", "data.clean"), ("clean", "data.removed_count"), ("clean", "clean.stats")],
        f"the clean step's history was {seen!r}",
    )

    # first broken rule wins; blanks and missing columns; ranges check numbers themselves
    records = [
        {"id": 1, "name": "  ", "v": "x"},  # required (blank), also numeric
        {"id": 2, "v": 5},  # required (name missing)
        {"id": 3, "name": "c", "v": True},  # numeric: a bool is not a number
        {"id": 4, "name": "d", "v": 5, "w": "9"},  # range: w is not a number
        {"id": 5, "name": "e", "v": 5, "w": 10},  # range: w above high
        {"id": 6, "name": "f", "v": 5.0, "w": 0},  # kept (ends included)
        {"id": 6, "name": "f", "v": 5, "w": 0},  # duplicate of the kept one (5 == 5.0)
        {"id": 7, "name": "g", "v": 7, "w": 9.5},  # kept
        {"id": 4, "name": "d", "v": 5, "w": "9"},  # range again, not duplicate
    ]
    (orders / "in" / "r.json").write_text(json.dumps(records), encoding="utf-8")
    args = {
        "required": ["name"],
        "numeric": ["v"],
        "ranges": {"w": [0, 9.5]},
        "drop_duplicates": True,
    }
    path = write_recipe(
        orders,
        [
            step("load", "DataLoaderScriptlet", args={"source": "in/r.json"}),
            step("clean", "DataCleanerScriptlet", depends_on=["load"], args=args),
        ],
        "rules.yaml",
    )
    data = user_data(run(learner, path))
    kept = [records[5], records[7]]
    check(data.get("data.clean") == kept, f"data.clean was {data.get('data.clean')!r}")
    stats = {
        "input": 9,
        "kept": 2,
        "removed": {"required": 2, "numeric": 1, "range": 3, "duplicate": 1},
    }
    check(data.get("clean.stats") == stats, f"clean.stats was {data.get('clean.stats')!r}")


@case(
    "6.1",
    0.5,
    "DataCleanerScriptlet must keep everything with no rules (all four counts 0), keep "
    "duplicates unless drop_duplicates is true, and refuse to run (StepNotRunError) "
    "when data.raw is not in the context",
    rules=("6.1-u", "6.1-v"),
)
def test_6_1_cleaner_defaults_and_validate(learner, orders):
    path = write_recipe(orders, [LOAD, step("clean", "DataCleanerScriptlet", depends_on=["load"])])
    data = user_data(run(learner, path))
    check(data.get("data.clean") == ORDERS, "with no args every record must be kept")
    stats = {
        "input": 9,
        "kept": 9,
        "removed": {"required": 0, "numeric": 0, "range": 0, "duplicate": 0},
    }
    check(data.get("clean.stats") == stats, f"clean.stats was {data.get('clean.stats')!r}")
    check(data.get("data.removed_count") == 0, "data.removed_count must be 0")

    # clean does not declare its dependency: skipping load leaves it without data.raw
    path = write_recipe(orders, [LOAD, step("clean", "DataCleanerScriptlet")], "nodep.yaml")
    ctx, exc = run_fails(
        learner, path, "StepNotRunError", skip=["load"], detail="clean without data.raw"
    )
    check(
        ctx.get("run.steps.clean.status") == "not_run" and "data.clean" not in ctx.keys(),
        f"the clean step must not run (status {ctx.get('run.steps.clean.status')!r})",
    )


TRANSFORM_RECORDS = [
    {"region": "north", "units": 3, "amount": 45.5},
    {"region": "south", "units": 1, "amount": 120},
    {"region": "north", "units": 7, "amount": 210},
    {"region": 7, "units": 5, "amount": 0.25},
]


@case(
    "6.1",
    1.0,
    "DataTransformerScriptlet must apply rename, scale and normalize in order to every record, "
    "and set data.transformed, transform.operations and (with aggregate) transform.groups",
    rules=("6.1-c", "6.1-af", "6.1-ag", "6.1-ah", "6.1-ai", "6.1-ak", "6.1-al"),
)
def test_6_1_transformer(learner, scratch):
    ops = [
        {"op": "rename", "from": "amount", "to": "cents"},
        {"op": "scale", "field": "cents", "factor": 100},
        {"op": "normalize", "field": "units"},
        {"op": "rename", "from": "nothing", "to": "still_nothing"},
    ]
    path = write_recipe(
        scratch,
        [
            step(
                "transform",
                "DataTransformerScriptlet",
                args={"operations": ops, "aggregate": {"by": "region", "sum": "cents"}},
            )
        ],
    )
    ctx = run(learner, path, ctx=seeded(learner, {"data.clean": TRANSFORM_RECORDS}))
    data = user_data(ctx)
    expected = [
        {"region": "north", "units": (3 - 1) / 6, "cents": 4550.0},
        {"region": "south", "units": 0.0, "cents": 12000},
        {"region": "north", "units": 1.0, "cents": 21000},
        {"region": 7, "units": (5 - 1) / 6, "cents": 25.0},
    ]
    got = data.get("data.transformed")
    check(close(got, expected), f"data.transformed was {got!r}")
    check(
        isinstance(got, list) and all("amount" not in r for r in got if isinstance(r, dict)),
        "a renamed column must disappear",
    )
    check(
        data.get("transform.operations") == ["rename", "scale", "normalize", "rename"],
        f"transform.operations was {data.get('transform.operations')!r}",
    )
    groups = data.get("transform.groups")
    check(
        close(
            groups,
            {
                "north": {"count": 2, "sum": 25550.0},
                "south": {"count": 1, "sum": 12000},
                "7": {"count": 1, "sum": 25.0},
            },
        )
        and list(groups) == ["north", "south", "7"],
        f"transform.groups was {groups!r}",
    )
    check(data.get("data.clean") == TRANSFORM_RECORDS, "data.clean itself must not change")
    seen = [e["key"] for e in ctx.get_history() if e["step"] == "transform"]
    check(
        seen == ["data.transformed", "transform.operations", "transform.groups"],
        f"the transform step set {seen!r}",
    )

    # equal values normalize to 0.0; no aggregate, no transform.groups
    same = [{"v": 4}, {"v": 4}]
    path = write_recipe(
        scratch,
        [
            step(
                "t",
                "DataTransformerScriptlet",
                args={"operations": [{"op": "normalize", "field": "v"}]},
            )
        ],
        "same.yaml",
    )
    data = user_data(run(learner, path, ctx=seeded(learner, {"data.clean": same})))
    check(data.get("data.transformed") == [{"v": 0.0}, {"v": 0.0}], "normalize of equal values")
    check("transform.groups" not in data, "without aggregate, transform.groups must not be set")


@case(
    "6.1",
    0.5,
    "DataTransformerScriptlet must refuse an unknown op in validate (StepNotRunError) and "
    "fail in run (StepFailedError) when scale or normalize meets a value that is not a number",
    rules=("6.1-ad", "6.1-ae", "6.1-aj"),
)
def test_6_1_transformer_errors(learner, scratch):
    clean = {"data.clean": [{"v": 1}, {"v": "2"}]}
    path = write_recipe(
        scratch,
        [
            step(
                "t",
                "DataTransformerScriptlet",
                args={"operations": [{"op": "explode", "field": "v"}]},
            )
        ],
    )
    ctx = seeded(learner, clean)
    raises(lambda: run(learner, path, ctx=ctx), "StepNotRunError", "an unknown op")
    check(ctx.get("run.steps.t.status") == "not_run", "an unknown op: the step must be not_run")
    for op in ("scale", "normalize"):
        path = write_recipe(
            scratch,
            [
                step(
                    "t",
                    "DataTransformerScriptlet",
                    args={"operations": [{"op": op, "field": "v", "factor": 2}]},
                )
            ],
            f"{op}.yaml",
        )
        ctx = seeded(learner, clean)
        raises(
            lambda path=path, ctx=ctx: run(learner, path, ctx=ctx),
            "StepFailedError",
            f"{op} of '2'",
        )
        check(ctx.get("run.steps.t.status") == "failed", f"{op} of a string: status must be failed")
    path = write_recipe(scratch, [step("t", "DataTransformerScriptlet")], "none.yaml")
    data = user_data(run(learner, path, ctx=seeded(learner, clean)))
    check(
        data.get("data.transformed") == clean["data.clean"]
        and data.get("transform.operations") == [],
        "with no operations the records must pass unchanged and transform.operations be []",
    )
    path = write_recipe(scratch, [step("t", "DataTransformerScriptlet")], "nodata.yaml")
    raises(lambda: run(learner, path), "StepNotRunError", "transform without data.clean")


@case(
    "6.1",
    0.75,
    "DataExporterScriptlet must write data.transformed as JSON (json.dump with indent=2) or "
    "CSV (header in first-seen order, empty cells for missing or None), and set export.path "
    "and export.report",
    rules=("6.1-am", "6.1-an", "6.1-ao", "6.1-ap", "6.1-at"),
)
def test_6_1_exporter(learner, scratch):
    records = [{"b": 1, "a": None}, {"c": "x", "b": 2.5}, {}]
    (scratch / "out").mkdir()
    path = write_recipe(
        scratch,
        [
            step("json", "DataExporterScriptlet", args={"target": "out/result.json"}),
            step(
                "csv", "DataExporterScriptlet", args={"target": "out/result.txt", "format": "csv"}
            ),
        ],
    )
    ctx = run(learner, path, ctx=seeded(learner, {"data.transformed": records, "data.count": 10}))
    text = (scratch / "out" / "result.json").read_text(encoding="utf-8")
    written = json.loads(text)
    check(written == records, f"the JSON file held {written!r}")
    check(
        text.rstrip("\n") == json.dumps(records, indent=2),
        f"the JSON file must be written by json.dump(records, f, indent=2); it held {text!r}",
    )
    with (scratch / "out" / "result.txt").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    check(
        rows == [["b", "a", "c"], ["1", "", ""], ["2.5", "", "x"], ["", "", ""]],
        f"the CSV file's rows were {rows!r}",
    )
    data = user_data(ctx)
    check(
        Path(str(data.get("export.path"))) == (scratch / "out" / "result.txt").resolve(),
        f"export.path was {data.get('export.path')!r} after the second export",
    )
    report = {"records": 3, "format": "csv", "loaded": 10, "removed": None, "operations": None}
    check(data.get("export.report") == report, f"export.report was {data.get('export.report')!r}")
    who = writers(ctx.get_history())
    check(
        who.get("export.report") == {"json", "csv"},
        f"export.report was written by {who.get('export.report')}",
    )

    for args, why in [
        ({"target": "missing/result.json"}, "a target folder that does not exist"),
        ({"target": "out/result.xml"}, "an unknown format"),
    ]:
        path = write_recipe(scratch, [step("e", "DataExporterScriptlet", args=args)], "bad.yaml")
        raises(
            lambda path=path: run(learner, path, ctx=seeded(learner, {"data.transformed": []})),
            "StepNotRunError",
            why,
        )
    path = write_recipe(
        scratch, [step("e", "DataExporterScriptlet", args={"target": "out/x.json"})], "n.yaml"
    )
    raises(lambda: run(learner, path), "StepNotRunError", "exporting without data.transformed")


def confirm_disk_full(os_module) -> None:
    """Confirm, calling it from here, that the worker's os.replace now fails as planned."""
    try:
        os_module.replace("f0-missing-source", "f0-missing-target")
    except LearnerException as exc:
        took = exc.is_a("OSError") and "disk full" in exc.message
    else:
        took = False
    confirm(took, "making os.replace fail")


@case(
    "6.1",
    0.5,
    "DataExporterScriptlet must write atomically: a temporary file moved with os.replace, "
    "none left behind, and the old target intact when the move fails",
    rules=("6.1-aq", "6.1-ar", "6.1-as"),
    critical=True,
)
def test_6_1_exporter_atomic(learner, scratch):
    folder = scratch / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("other file", encoding="utf-8")
    target = folder / "result.json"
    target.write_text("OLD", encoding="utf-8")
    path = write_recipe(
        scratch, [step("e", "DataExporterScriptlet", args={"target": "out/result.json"})]
    )
    run(learner, path, ctx=seeded(learner, {"data.transformed": [{"a": 1}]}))
    check(
        json.loads(target.read_text(encoding="utf-8")) == [{"a": 1}], "the target was not replaced"
    )
    names = sorted(p.name for p in folder.iterdir())
    check(names == ["keep.txt", "result.json"], f"after an export the folder held {names}")

    target.write_text("OLD", encoding="utf-8")
    os_module = learner.make(expr("__import__('os')"))
    original = os_module.replace.value()
    os_module.replace = learner.make(
        expr("lambda *args, **kwargs: (_ for _ in ()).throw(OSError('disk full'))")
    )
    try:
        confirm_disk_full(os_module)
        ctx = seeded(learner, {"data.transformed": [{"a": 2}]})
        exc = raises(
            lambda: run(learner, path, ctx=ctx), "StepFailedError", "when os.replace fails"
        )
    finally:
        os_module.replace = original
    check("disk full" in exc.message, f"the failure must be the move's OSError: {exc.message!r}")
    check(target.read_text(encoding="utf-8") == "OLD", "a failed export changed the old target")
    names = sorted(p.name for p in folder.iterdir())
    check(names == ["keep.txt", "result.json"], f"after a failed export the folder held {names}")


@case(
    "6.1",
    0.5,
    "context_flow(history) must map each step to the keys it set, each once, in first-set "
    "order, steps in order of first entry, leaving out None and (unless include_runner) 'runner'",
    rules=("6.1-au", "6.1-av", "6.1-aw", "6.1-ax"),
)
def test_6_1_context_flow(learner):
    history = [
        {"timestamp": 1.0, "step": "runner", "key": "run.plan", "before": None, "after": []},
        {"timestamp": 2.0, "step": "b", "key": "x", "before": None, "after": 1},
        {"timestamp": 3.0, "step": None, "key": "anon", "before": None, "after": 1},
        {"timestamp": 4.0, "step": "a", "key": "z", "before": None, "after": 1},
        {"timestamp": 5.0, "step": "b", "key": "y", "before": None, "after": 1},
        {"timestamp": 6.0, "step": "b", "key": "x", "before": 1, "after": 2},
        {"timestamp": 7.0, "step": "a", "key": "x", "before": 2, "after": 3},
        {"timestamp": 8.0, "step": "runner", "key": "run.error", "before": None, "after": {}},
        {"timestamp": 9.0, "step": "runner", "key": "run.plan", "before": [], "after": []},
    ]
    got = learner.context_flow(history)
    check(got == {"b": ["x", "y"], "a": ["z", "x"]}, f"it returned {got!r}")
    check(
        isinstance(got, dict) and list(got) == ["b", "a"], "steps must be in order of first entry"
    )
    got = learner.context_flow(history, include_runner=True)
    expected = {"runner": ["run.plan", "run.error"], "b": ["x", "y"], "a": ["z", "x"]}
    check(got == expected and list(got) == ["runner", "b", "a"], f"with include_runner: {got!r}")
    check(learner.context_flow([]) == {}, "an empty history must give {}")


@case(
    "6.1",
    0.25,
    "the four scriptlets must run as a pipeline in dependency order (also with only=), and "
    "context_flow of the run must show each step's keys",
    rules=("6.1-a", "6.1-b", "6.1-c", "6.1-d", "6.1-au"),
)
def test_6_1_pipeline_end_to_end(learner, orders):
    (orders / "out").mkdir()
    steps = [  # listed against idx order on purpose: the runner orders by depends_on
        step(
            "export",
            "DataExporterScriptlet",
            idx=1,
            depends_on=["transform"],
            args={"target": "out/final.json"},
        ),
        step(
            "transform",
            "DataTransformerScriptlet",
            idx=2,
            depends_on=["clean"],
            args={"operations": [{"op": "scale", "field": "units", "factor": 2}]},
        ),
        step("clean", "DataCleanerScriptlet", idx=3, depends_on=["load"], args=CLEAN_ARGS),
        {**LOAD, "idx": 4},
    ]
    full = [{"module": "notebook", **s} for s in steps]
    (orders / "pipe.yaml").write_text(yaml.safe_dump({"steps": full}), encoding="utf-8")
    ctx = run(learner, str(orders / "pipe.yaml"))
    flow = learner.context_flow(ctx.get_history())
    expected = {
        "load": ["data.raw", "data.count", "data.columns", "data.source"],
        "clean": ["data.clean", "data.removed_count", "clean.stats"],
        "transform": ["data.transformed", "transform.operations"],
        "export": ["export.path", "export.report"],
    }
    check(flow == expected and list(flow) == list(expected), f"context_flow gave {flow!r}")
    final = json.loads((orders / "out" / "final.json").read_text(encoding="utf-8"))
    check(
        final == [{**r, "units": r["units"] * 2} for r in KEPT], f"the exported file held {final!r}"
    )
    report = ctx.get("export.report")
    check(
        report
        == {"records": 4, "format": "json", "loaded": 9, "removed": 5, "operations": ["scale"]},
        f"export.report was {report!r}",
    )
    ctx = run(learner, str(orders / "pipe.yaml"), only=["clean"])
    data = user_data(ctx)
    check(
        ctx.get("run.plan") == ["load", "clean"]
        and "data.transformed" not in data
        and data.get("data.clean") == KEPT,
        "only=['clean'] must run load and clean, and nothing else",
    )


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


@case(
    "6.2",
    0.75,
    "rollback_plan() must find the last entry that sets a run.steps.<name>.status key to 'ok' "
    "and return (its step, the before of each non-bookkeeping key's first entry after it)",
    rules=("6.2-a", "6.2-c", "6.2-d", "6.2-e", "6.2-f"),
)
def test_6_2_rollback_plan(learner):
    history = [
        entry("a", "x", None, 1),
        status("a", "ok"),
        entry("b", "y", None, "b1"),
        entry("b", "x", 1, 2),
        status("b", "ok"),
        entry("c", "x", 2, 3),
        entry("c", "z", None, [1]),
        entry("c", "job.status", "queued", "ok"),  # 'ok', but not a step's status key
        entry("runner", "run.steps.c.note", None, "ok"),  # nor is this one
        entry("c", "x", 3, 4),
        entry("runner", "run.error", None, {"step": "c"}),
        entry("c", "rollback.restored", None, ["q"]),
        entry("c", "error.type", None, "boom"),
        entry("c", "y", "b1", "c1"),
        status("c", "failed"),
        entry("c", "run_log", None, "not bookkeeping: the prefix is 'run.'"),
    ]
    got = learner.rollback_plan(history)
    check(
        isinstance(got, tuple) and len(got) == 2, f"it must return a (step, values) tuple: {got!r}"
    )
    good, values = got
    check(good == "b", f"the good step was {good!r}; b is the last step that finished ok")
    expected = {"x": 2, "z": None, "job.status": "queued", "y": "b1", "run_log": None}
    check(values == expected, f"the values were {values!r}")
    check(
        list(values) == ["x", "z", "job.status", "y", "run_log"],
        f"the keys must follow their first entries: {list(values)}",
    )


@case(
    "6.2",
    0.5,
    "rollback_plan() must honour to_step, roll back everything when no step finished ok, and "
    "raise ValueError naming a to_step that never finished ok",
    rules=("6.2-b", "6.2-g", "6.2-h"),
)
def test_6_2_rollback_plan_to_step_and_start(learner):
    history = [
        entry("a", "x", None, 1),
        status("a", "ok"),
        entry("b", "x", 1, 2),
        status("b", "ok"),
        entry("c", "x", 2, 3),
        entry("a", "x", 3, 5),  # a runs again (a second run on the same context) ...
        status("a", "ok"),  # ... and finishes ok again: its last 'ok' is the good point
        entry("c", "x", 5, 6),
    ]
    for to_step, expected in (("a", ("a", {"x": 5})), ("b", ("b", {"x": 2}))):
        got = learner.rollback_plan(history, to_step)
        check(got == expected, f"rollback_plan(history, {to_step!r}) returned {got!r}")
    start = [entry("prüfen", "x", None, 1), status("prüfen", "failed"), entry("prüfen", "y", 5, 6)]
    got = learner.rollback_plan(start)
    check(got == (None, {"x": None, "y": 5}), f"with no good point it returned {got!r}")
    cases = [
        (start, "prüfen"),  # it ran, but failed
        ([status("load_more", "ok"), entry("t", "x", 1, 2)], "load"),  # only 'load_more' did
        (history, "zz"),  # never ran
    ]
    for steps, to_step in cases:
        exc = raises(
            lambda steps=steps, to_step=to_step: learner.rollback_plan(steps, to_step),
            "ValueError",
            f"to_step {to_step!r} never finished ok",
        )
        check(
            re.search(rf"(?<!\w){re.escape(to_step)}(?!\w)", exc.message) is not None,
            f"to_step {to_step!r} never finished ok: the message must name it: {exc.message!r}",
        )


@case(
    "6.2",
    1.0,
    "RollbackScriptlet, run on the context of a failed run, must restore each key to its value "
    "at the last good step (sorted order, who = its step) and set rollback.restored and "
    "rollback.to_step",
    rules=("6.2-c", "6.2-i", "6.2-k", "6.2-l", "6.2-m"),
    critical=True,
)
def test_6_2_rollback_after_failed_run(learner, orders):
    path = write_recipe(
        orders,
        [
            LOAD,
            step("clean", "DataCleanerScriptlet", depends_on=["load"], args=CLEAN_ARGS),
            step(
                "crash",
                "Corrupt",
                depends_on=["clean"],
                args={"writes": {"data.clean": [], "zeta.partial": 1, "data.count": -1}},
            ),
        ],
    )
    ctx, exc = run_fails(learner, path, "StepFailedError", extra={"Corrupt": learner.make(CORRUPT)})
    check(ctx.get("data.clean") == [], "the test's failing step did not run as expected")
    undo = write_recipe(orders, [step("undo", "RollbackScriptlet")], "undo.yaml")
    run(learner, undo, ("RollbackScriptlet",), ctx=ctx)
    data = user_data(ctx)
    check(data.get("data.clean") == KEPT, f"data.clean was {data.get('data.clean')!r}")
    check(data.get("data.count") == 9, f"data.count was {data.get('data.count')!r}")
    check(
        "zeta.partial" in data and data["zeta.partial"] is None,
        "a key new after the good point must be set to None",
    )
    check(
        data.get("rollback.restored") == ["data.clean", "data.count", "zeta.partial"],
        f"rollback.restored was {data.get('rollback.restored')!r}",
    )
    check(
        data.get("rollback.to_step") == "clean",
        f"rollback.to_step was {data.get('rollback.to_step')!r}",
    )
    seen = [e["key"] for e in ctx.get_history() if e["step"] == "undo"]
    check(
        seen
        == ["data.clean", "data.count", "zeta.partial", "rollback.restored", "rollback.to_step"],
        f"the undo step set {seen!r}",
    )
    check(ctx.get("run.error", {}).get("step") == "crash", "run.* keys must never be rolled back")


@case(
    "6.2",
    0.5,
    "RollbackScriptlet must roll back to to_step within a run, and refuse to run "
    "(StepNotRunError) when to_step never finished ok",
    rules=("6.2-b", "6.2-j", "6.2-k", "6.2-l"),
)
def test_6_2_rollback_to_step(learner, orders):
    path = write_recipe(
        orders,
        [
            LOAD,
            step("clean", "DataCleanerScriptlet", depends_on=["load"], args=CLEAN_ARGS),
            step("undo", "RollbackScriptlet", depends_on=["clean"], args={"to_step": "load"}),
        ],
    )
    ctx = run(learner, path, PIPELINE + ("RollbackScriptlet",))
    data = user_data(ctx)
    check(
        data.get("data.raw") == ORDERS
        and all(
            data.get(k, "absent") is None
            for k in ("data.clean", "data.removed_count", "clean.stats")
        ),
        "after rolling back to 'load', clean's three keys must be None and data.raw unchanged",
    )
    check(
        data.get("rollback.to_step") == "load",
        f"rollback.to_step was {data.get('rollback.to_step')!r}",
    )
    path = write_recipe(
        orders,
        [LOAD, step("undo", "RollbackScriptlet", depends_on=["load"], args={"to_step": "clean"})],
        "never.yaml",
    )
    ctx, _ = run_fails(learner, path, "StepNotRunError", PIPELINE + ("RollbackScriptlet",))
    check(ctx.get("run.steps.undo.status") == "not_run", "the rollback step must be not_run")


def error_keys(ctx):
    return {k: v for k, v in ctx.to_dict().items() if k.startswith("error.")}


@case(
    "6.2",
    0.5,
    "ErrorRecoveryManager.handle_error() must return False for an unknown error type and "
    "record error.type, error.details, error.recovery_method, error.recovered and error.log "
    "(who='recovery')",
    rules=("6.2-n", "6.2-r", "6.2-s", "6.2-t", "6.2-u"),
)
def test_6_2_manager_records(learner):
    manager = learner.ErrorRecoveryManager()
    ctx = learner.Context()
    got = manager.handle_error(ctx, "disk_on_fire", {"where": "rack 3"})
    check(got is False, f"handle_error returned {got!r}")
    expected = {
        "error.type": "disk_on_fire",
        "error.details": {"where": "rack 3"},
        "error.recovery_method": None,
        "error.recovered": False,
        "error.log": [{"type": "disk_on_fire", "method": None, "recovered": False}],
    }
    check(error_keys(ctx) == expected, f"the error keys were {error_keys(ctx)!r}")
    seen = [(e["step"], e["key"]) for e in ctx.get_history()]
    check(
        seen == [("recovery", k) for k in expected],
        f"the history recorded (who, key) = {seen!r}",
    )
    got = manager.handle_error(ctx, "validation_failure", {"key": "app.port", "default": 80})
    check(got is True, "validation_failure with key and default must recover")
    log = ctx.get("error.log")
    check(
        log
        == [
            expected["error.log"][0],
            {"type": "validation_failure", "method": "use_default", "recovered": True},
        ],
        f"error.log was {log!r}",
    )


@case(
    "6.2",
    0.75,
    "the data_load_failure strategy must load the fallback file into data.raw, data.count, "
    "data.columns and data.source, and report False (without raising) when it cannot",
    rules=("6.2-n", "6.2-v", "6.2-w"),
)
def test_6_2_manager_data_load(learner, scratch):
    backup = [{"id": 1, "v": "a"}, {"id": 2, "w": 2.5}]
    (scratch / "backup.json").write_text(json.dumps(backup), encoding="utf-8")
    manager = learner.ErrorRecoveryManager()
    ctx = learner.Context()
    fallback = str(scratch / "backup.json")
    check(
        manager.handle_error(ctx, "data_load_failure", {"fallback": fallback}) is True,
        "loading an existing fallback must recover",
    )
    data = ctx.to_dict()
    check(
        data.get("data.raw") == backup and data.get("data.count") == 2,
        f"data.raw was {data.get('data.raw')!r}",
    )
    check(
        data.get("data.columns") == ["id", "v", "w"],
        f"data.columns was {data.get('data.columns')!r}",
    )
    check(
        data.get("data.source") == {"path": fallback, "format": "json"},
        f"data.source was {data.get('data.source')!r}",
    )
    check(data.get("error.recovery_method") == "fallback_source", "error.recovery_method")
    who = writers(ctx.get_history())
    check(who.get("data.raw") == {"recovery"}, f"data.raw was written by {who.get('data.raw')}")

    (scratch / "rows.txt").write_text("a,b\n1,x\n", encoding="utf-8")
    other = learner.Context()
    details = {"fallback": str(scratch / "rows.txt"), "format": "csv"}
    check(
        manager.handle_error(other, "data_load_failure", details) is True,
        "a format given in the details",
    )
    check(
        other.get("data.raw") == [{"a": 1, "b": "x"}],
        "the fallback's format must come from the details",
    )
    for details in ({"fallback": str(scratch / "absent.json")}, {}):
        ctx = learner.Context()
        got = manager.handle_error(ctx, "data_load_failure", details)
        check(
            got is False and ctx.get("error.recovered") is False,
            f"with details {details!r} it returned {got!r}",
        )
        check("data.raw" not in ctx.keys(), f"with details {details!r} data.raw must not be set")


@case(
    "6.2",
    0.75,
    "the processing_error strategy must roll back (True when it restored a key), "
    "validation_failure needs key and default, and a strategy that raises or returns "
    "anything but True has not recovered",
    rules=("6.2-o", "6.2-p", "6.2-q", "6.2-x", "6.2-y", "6.2-z", "6.2-aa"),
)
def test_6_2_manager_processing_and_validation(learner, orders):
    path = write_recipe(
        orders,
        [LOAD, step("crash", "Corrupt", depends_on=["load"], args={"writes": {"data.raw": []}})],
    )
    ctx, _ = run_fails(learner, path, "StepFailedError", extra={"Corrupt": learner.make(CORRUPT)})
    manager = learner.ErrorRecoveryManager()
    check(
        manager.handle_error(ctx, "processing_error", {}) is True, "processing_error must recover"
    )
    check(ctx.get("data.raw") == ORDERS, "processing_error must restore data.raw")
    check(
        ctx.get("error.recovery_method") == "rollback", "error.recovery_method must be 'rollback'"
    )
    check(
        writers(ctx.get_history()).get("data.raw") == {"load", "crash", "recovery"},
        "the restore must be written with who='recovery'",
    )
    clean = learner.Context()
    clean.set("run.steps.a.status", "ok", who="runner")
    check(
        manager.handle_error(clean, "processing_error", {}) is False, "nothing to roll back: False"
    )

    ctx = learner.Context()
    check(
        manager.handle_error(ctx, "validation_failure", {"key": "k"}) is False, "no default: False"
    )
    check("k" not in ctx.keys(), "without a default, nothing may be set")
    try:  # the strategy itself, as the notebook states it: False, not an error
        got = manager._recover_validation(ctx, {"default": 5})
    except LearnerException as exc:
        got = f"an exception ({exc.type})"
    check(
        got is False,
        f"_recover_validation with a default but no key must return False; it gave {got!r}",
    )
    check(
        manager.handle_error(ctx, "validation_failure", {"key": "k", "default": None}) is True,
        "a default of None is still a default",
    )
    check("k" in ctx.keys() and ctx.get("k") is None, "key k must be set to None")

    strategies = manager.recovery_strategies.value()
    check(
        isinstance(strategies, dict)
        and set(strategies) == {"data_load_failure", "processing_error", "validation_failure"},
        "recovery_strategies must hold exactly the three strategies",
    )
    manager.recovery_strategies = {
        **strategies,
        "processing_error": learner.make(expr("lambda ctx, details: 1 / 0")),
        "validation_failure": learner.make(expr("lambda ctx, details: 'yes'")),
    }
    ctx = learner.Context()
    got = manager.handle_error(ctx, "processing_error", {})
    check(
        got is False
        and ctx.get("error.recovery_method") == "rollback"
        and ctx.get("error.recovered") is False,
        "a strategy that raises has not recovered (and handle_error must not raise)",
    )
    check(manager.handle_error(ctx, "validation_failure", {}) is False, "'yes' is not True")


@case(
    "6.2",
    0.25,
    "handle_error() must call whatever recovery_strategies holds for the error type, count "
    "only exactly True as recovered, record error.recovery_method as METHODS.get(error_type) "
    "(None for a type METHODS does not list), and set the error.* keys after the strategy ran",
    rules=("6.2-o", "6.2-p", "6.2-s"),
)
def test_6_2_manager_custom_strategy(learner):
    manager = learner.ErrorRecoveryManager()
    strategies = manager.recovery_strategies.value()
    check(isinstance(strategies, dict), "recovery_strategies must be a dict")
    manager.recovery_strategies = {
        **strategies,
        "disk_full": learner.make(
            expr(
                "lambda ctx, details: "
                "(ctx.set('disk.freed_mb', details['mb'], who='recovery'), True)[1]"
            )
        ),
        "data_load_failure": learner.make(expr("lambda ctx, details: 1")),
    }
    ctx = learner.Context()
    got = manager.handle_error(ctx, "disk_full", {"mb": 512})
    check(got is True, f"a strategy that returned True: handle_error returned {got!r}")
    check(ctx.get("disk.freed_mb") == 512, "the strategy for 'disk_full' was not called")
    check(
        ctx.get("error.recovery_method") is None and ctx.get("error.recovered") is True,
        "for 'disk_full', which METHODS does not list, error.recovery_method must be None and "
        f"error.recovered True; they were {ctx.get('error.recovery_method')!r} and "
        f"{ctx.get('error.recovered')!r}",
    )
    keys = [e["key"] for e in ctx.get_history()]
    expected = ["disk.freed_mb", "error.type", "error.details", "error.recovery_method"]
    expected += ["error.recovered", "error.log"]
    check(
        keys == expected,
        f"the history's keys were {keys!r}: the strategy runs first, then the error.* keys",
    )
    got = manager.handle_error(ctx, "data_load_failure", {"fallback": "nowhere.json"})
    check(
        got is False and ctx.get("error.recovered") is False,
        f"a strategy that returned 1 (not exactly True) has not recovered; it returned {got!r}",
    )
    log = ctx.get("error.log")
    check(
        log
        == [
            {"type": "disk_full", "method": None, "recovered": True},
            {"type": "data_load_failure", "method": "fallback_source", "recovered": False},
        ],
        f"error.log was {log!r}",
    )


# =========================================================================== exercise 6.3
@case(
    "6.3",
    0.5,
    "load_config_file() must read YAML (.yaml, .yml) and JSON by suffix, and raise ValueError "
    "for another suffix or a file that does not hold a mapping",
    rules=("6.3-a", "6.3-b"),
)
def test_6_3_load_config_file(learner, scratch):
    files = {
        "a.yaml": ("db:\n  port: 5432\nflags: [1, 2]\n", {"db": {"port": 5432}, "flags": [1, 2]}),
        "b.YML": ("name: x\n", {"name": "x"}),
        "c.json": ('{"db": {"host": "h"}}', {"db": {"host": "h"}}),
        # JSON's 1e3 is a number; YAML 1.1 (safe_load) would read it as text
        "d.json": ('{"limit": 1e3, "ratio": 2.5E-1}', {"limit": 1000.0, "ratio": 0.25}),
    }
    for name, (text, expected) in files.items():
        (scratch / name).write_text(text, encoding="utf-8")
        got = learner.load_config_file(str(scratch / name))
        check(got == expected, f"{name} gave {got!r}")
    bad = {
        "list.yaml": "- 1\n- 2\n",
        "empty.yaml": "",
        "text.json": '"just text"',
        "c.toml": "a = 1\n",
    }
    for name, text in bad.items():
        (scratch / name).write_text(text, encoding="utf-8")
        raises(lambda name=name: learner.load_config_file(str(scratch / name)), "ValueError", name)
    raises(
        lambda: learner.load_config_file(str(scratch / "absent.ini")), "ValueError", "absent.ini"
    )


@case(
    "6.3",
    0.75,
    "merge_config() must deep-merge dicts, let the layer replace anything else (lists too), "
    "and return a new dict sharing nothing with its arguments, which stay unchanged",
    rules=("6.3-c", "6.3-d", "6.3-e"),
)
def test_6_3_merge_config(learner):
    base = {
        "db": {"host": "a", "port": 1, "pool": {"min": 1, "max": 5}},
        "only": {"list": [1], "deep": {"k": "v"}},
        "tags": ["x"],
        "mode": {"a": 1},
        "n": 1,
    }
    layer = {
        "db": {"host": "b", "pool": {"max": 9}},
        "tags": ["y"],
        "mode": "off",
        "n": {"deep": True},
        "new": 0,
    }
    expected = {
        "db": {"host": "b", "port": 1, "pool": {"min": 1, "max": 9}},
        "only": {"list": [1], "deep": {"k": "v"}},
        "tags": ["y"],
        "mode": "off",
        "n": {"deep": True},
        "new": 0,
    }
    got = learner.merge_config(base, layer)
    check(got == expected, f"it returned {got!r}")
    check(learner.merge_config({}, {}) == {}, "merging two empty dicts")

    kept_base, kept_layer = learner.keep(base), learner.keep(layer)
    changed = copy.deepcopy(expected)
    changed["db"]["pool"]["min"] = 99
    changed["tags"].append("z")
    changed["n"]["deep"] = False
    changed["db"]["extra"] = 1
    changed["only"]["list"].append(2)
    changed["only"]["deep"]["k"] = "changed"
    # The grader lambda changes the merged result and returns it: this side confirms the
    # change was made, then reads base and layer back itself.
    changed_in_worker(
        learner,
        "lambda merge, base, layer: (lambda r: (r['db']['pool'].__setitem__('min', 99), "
        "r['tags'].append('z'), r['n'].__setitem__('deep', False), "
        "r['db'].__setitem__('extra', 1), r['only']['list'].append(2), "
        "r['only']['deep'].__setitem__('k', 'changed'), r)[-1])(merge(base, layer))",
        learner.merge_config,
        kept_base,
        kept_layer,
        expect=changed,
        what="changing the merged result",
    )
    after = [read_back(learner, kept_base), read_back(learner, kept_layer)]
    check(
        after == [base, layer],
        "changing the merged result changed base or layer (shared dicts or lists)",
    )
    # an empty layer changes no value, but the result is still a new dict sharing nothing
    merged = learner.merge_config.live(kept_base, {})
    check(
        not learner.same(merged, kept_base),
        "merge_config(base, {}) returned base itself, not a new dict",
    )
    shared = [
        key
        for key in ("db", "only", "tags", "mode")
        if learner.same(merged.get.live(key), kept_base.get.live(key))
    ]
    check(not shared, f"merge_config(base, {{}}) shares base's values under {shared}")


@case(
    "6.3",
    0.5,
    "flatten_config() must turn nested non-empty dicts into dotted keys, keep lists and empty "
    "dicts as leaves, use str() on keys and honour prefix",
    rules=("6.3-f", "6.3-g", "6.3-h"),
)
def test_6_3_flatten_config(learner):
    config = {"db": {"host": "h", "pool": {"max": 5}, "opts": {}}, "tags": [{"a": 1}], "on": None}
    expected = {"db.host": "h", "db.pool.max": 5, "db.opts": {}, "tags": [{"a": 1}], "on": None}
    got = learner.flatten_config(config)
    check(got == expected, f"it returned {got!r}")
    got = learner.flatten_config(config, "config")
    check(got == {f"config.{k}": v for k, v in expected.items()}, f"with prefix 'config': {got!r}")
    got = learner.flatten_config(config, "")
    check(got == expected, f"with prefix '' (empty: no prefix) it returned {got!r}")
    got = learner.flatten_config(learner.make(expr("{1: {True: 'x'}, 'a': {}}")))
    check(got == {"1.True": "x", "a": {}}, f"with keys 1 and True: {got!r}")
    check(learner.flatten_config({}) == {}, "an empty config")


BASE = {
    "app": {"name": "inv", "debug": False, "workers": 4},
    "db": {"host": "db.internal", "port": 5432, "pool": {"min": 2, "max": 10}},
    "log": {"handlers": ["console"]},
}


def config_files(folder: Path) -> None:
    (folder / "conf").mkdir(exist_ok=True)
    (folder / "conf" / "base.yaml").write_text(yaml.safe_dump(BASE), encoding="utf-8")
    (folder / "conf" / "env.json").write_text(
        json.dumps({"app": {"debug": True}, "db": {"pool": 3}, "cache": {"ttl": 60}}),
        encoding="utf-8",
    )
    (folder / "conf" / "local.yml").write_text(
        "app:\n  workers: 1\n  debug: true\n", encoding="utf-8"
    )


LOAD_CONFIG = step(
    "load",
    "ConfigLoaderScriptlet",
    args={"layers": ["conf/base.yaml", "conf/env.json", "conf/local.yml"]},
)
FINAL = {
    "app.name": "inv",
    "app.debug": True,
    "app.workers": 1,
    "db.host": "db.internal",
    "db.port": 5432,
    "db.pool": 3,
    "log.handlers": ["console"],
    "cache.ttl": 60,
}


@case(
    "6.3",
    1.0,
    "ConfigLoaderScriptlet must merge the layers in order, set config.<flat key> in sorted "
    "order, and record config_meta.layers (added, changed, removed) and config_meta.keys",
    rules=("6.3-i", "6.3-j", "6.3-k", "6.3-l", "6.3-m"),
)
def test_6_3_loader_layers(learner, scratch):
    config_files(scratch)
    path = write_recipe(scratch, [LOAD_CONFIG])
    ctx = run(learner, path, CONFIG)
    data = user_data(ctx)
    values = {k[len("config.") :]: v for k, v in data.items() if k.startswith("config.")}
    check(values == FINAL, f"the config.* keys were {values!r}")
    check(
        data.get("config_meta.keys") == sorted(FINAL),
        f"config_meta.keys was {data.get('config_meta.keys')!r}",
    )
    layers = data.get("config_meta.layers")
    expected = [
        {
            "added": sorted(
                [
                    "app.name",
                    "app.debug",
                    "app.workers",
                    "db.host",
                    "db.port",
                    "db.pool.min",
                    "db.pool.max",
                    "log.handlers",
                ]
            ),
            "changed": [],
            "removed": [],
        },
        {
            "added": ["cache.ttl", "db.pool"],
            "changed": ["app.debug"],
            "removed": ["db.pool.max", "db.pool.min"],
        },
        {"added": [], "changed": ["app.workers"], "removed": []},
    ]
    ok = isinstance(layers, list) and len(layers) == 3
    check(
        ok and [{k: v for k, v in r.items() if k != "path"} for r in layers] == expected,
        f"config_meta.layers was {layers!r}",
    )
    names = ["base.yaml", "env.json", "local.yml"]
    check(
        ok
        and [Path(r["path"]) for r in layers] == [(scratch / "conf" / n).resolve() for n in names],
        "each layer's path must be its resolved file path",
    )
    seen = [e["key"] for e in ctx.get_history() if e["step"] == "load"]
    order = [f"config.{k}" for k in sorted(FINAL)] + ["config_meta.layers", "config_meta.keys"]
    check(seen == order, f"the load step set {seen!r}")
    path = write_recipe(
        scratch,
        [step("load", "ConfigLoaderScriptlet", args={"layers": ["conf/none.yaml"]})],
        "x.yaml",
    )
    raises(
        lambda: run(learner, path, CONFIG), "StepNotRunError", "a layer file that does not exist"
    )
    path = write_recipe(
        scratch, [step("load", "ConfigLoaderScriptlet", args={"layers": []})], "y.yaml"
    )
    raises(lambda: run(learner, path, CONFIG), "StepNotRunError", "an empty layers list")


VALIDATE_ARGS = {
    "required": ["app.name", "db.user", "app.workers", "zz"],
    "types": {
        "app.debug": "bool",
        "app.workers": "int",
        "db.pool": "dict",
        "db.port": "str",
        "log.handlers": "list",
        "cache.ttl": "number",
        "db.user": "str",
        "app.name": "int",
    },
    "ranges": {
        "app.workers": [2, 8],
        "db.port": [1, 65535],
        "app.name": [0, 1],
        "missing.x": [0, 1],
    },
}


@case(
    "6.3",
    1.0,
    "ConfigValidatorScriptlet must list the errors (missing, then type, then range, each in "
    "the args' order, in the exact words; a key holding None is present), set "
    "config_meta.errors and config_meta.valid, and fail the step when invalid",
    rules=("6.3-n", "6.3-o", "6.3-q", "6.3-r", "6.3-s", "6.3-t", "6.3-u", "6.3-v"),
)
def test_6_3_validator(learner, scratch):
    config_files(scratch)
    path = write_recipe(
        scratch,
        [
            LOAD_CONFIG,
            step("check", "ConfigValidatorScriptlet", depends_on=["load"], args=VALIDATE_ARGS),
        ],
    )
    ctx, _ = run_fails(learner, path, "StepFailedError", CONFIG, detail="an invalid configuration")
    errors = [
        "missing: db.user",
        "missing: zz",
        "type: db.pool must be dict",
        "type: db.port must be str",
        "type: app.name must be int",
        "range: app.workers must be between 2 and 8",
        "range: app.name must be between 0 and 1",
    ]
    check(
        ctx.get("config_meta.errors") == errors,
        f"config_meta.errors was {ctx.get('config_meta.errors')!r}",
    )
    check(ctx.get("config_meta.valid") is False, "config_meta.valid must be False")
    check(ctx.get("run.steps.check.status") == "failed", "the step must fail (run returns 1)")

    good = {
        "required": ["app.name", "db.pool"],
        "types": {
            "app.workers": "int",
            "db.port": "number",
            "app.name": "str",
            "app.debug": "bool",
        },
        "ranges": {"app.workers": [1, 1], "db.port": [5432.0, 6000]},
    }
    path = write_recipe(
        scratch,
        [LOAD_CONFIG, step("check", "ConfigValidatorScriptlet", depends_on=["load"], args=good)],
        "ok.yaml",
    )
    ctx = run(learner, path, CONFIG)
    check(
        ctx.get("config_meta.errors") == [] and ctx.get("config_meta.valid") is True,
        f"a valid configuration gave errors {ctx.get('config_meta.errors')!r}",
    )
    seen = [e["key"] for e in ctx.get_history() if e["step"] == "check"]
    check(seen == ["config_meta.errors", "config_meta.valid"], f"the check step set {seen!r}")

    # owner holds None: present all the same; 1.0 is written as 1.0 in the message
    (scratch / "conf" / "b.yaml").write_text(
        "flag: 1\nn: true\nowner: null\nratio: 2.5\n", encoding="utf-8"
    )
    args = {
        "required": ["owner", "ghost"],
        "types": {"flag": "bool", "n": "int", "owner": "str"},
        "ranges": {"n": [0, 5], "ratio": [1.0, 2]},
    }
    path = write_recipe(
        scratch,
        [
            step("load", "ConfigLoaderScriptlet", args={"layers": ["conf/b.yaml"]}),
            step("check", "ConfigValidatorScriptlet", depends_on=["load"], args=args),
        ],
        "bools.yaml",
    )
    ctx, _ = run_fails(
        learner, path, "StepFailedError", CONFIG, detail="1 is not a bool, True not an int"
    )
    errors = [
        "missing: ghost",
        "type: flag must be bool",
        "type: n must be int",
        "type: owner must be str",
        "range: n must be between 0 and 5",
        "range: ratio must be between 1.0 and 2",
    ]
    check(
        ctx.get("config_meta.errors") == errors,
        f"config_meta.errors was {ctx.get('config_meta.errors')!r}, expected {errors!r} (a key "
        "holding None is present)",
    )
    path = write_recipe(
        scratch,
        [LOAD_CONFIG, step("check", "ConfigValidatorScriptlet", depends_on=["load"])],
        "noargs.yaml",
    )
    ctx = run(learner, path, CONFIG)
    check(
        ctx.get("config_meta.errors") == [] and ctx.get("config_meta.valid") is True,
        "a validator step without args must find no errors",
    )


@case(
    "6.3",
    0.25,
    "ConfigValidatorScriptlet.validate must refuse (StepNotRunError) when no configuration "
    "was loaded or a type name is unknown",
    rules=("6.3-p",),
)
def test_6_3_validator_cannot_run(learner, scratch):
    config_files(scratch)
    path = write_recipe(scratch, [step("check", "ConfigValidatorScriptlet")])
    raises(lambda: run(learner, path, CONFIG), "StepNotRunError", "validating with nothing loaded")
    path = write_recipe(
        scratch,
        [
            LOAD_CONFIG,
            step(
                "check",
                "ConfigValidatorScriptlet",
                depends_on=["load"],
                args={"types": {"app.name": "string"}},
            ),
        ],
        "t.yaml",
    )
    ctx, _ = run_fails(learner, path, "StepNotRunError", CONFIG, detail="the type name 'string'")
    check(ctx.get("run.steps.check.status") == "not_run", "the check step must be not_run")


APPLY = step(
    "apply",
    "ConfigApplierScriptlet",
    depends_on=["check"],
    args={"components": {"web": ["app.workers", "app.name"], "store": ["db.pool"], "none": []}},
)
CHECK = step(
    "check", "ConfigValidatorScriptlet", depends_on=["load"], args={"required": ["app.name"]}
)


@case(
    "6.3",
    0.5,
    "ConfigApplierScriptlet must set app.<component> (its keys and values) for each component "
    "in order, then app.components",
    rules=("6.3-w", "6.3-y", "6.3-z"),
)
def test_6_3_applier(learner, scratch):
    config_files(scratch)
    path = write_recipe(scratch, [LOAD_CONFIG, CHECK, APPLY])
    ctx = run(learner, path, CONFIG)
    data = user_data(ctx)
    check(
        data.get("app.web") == {"app.workers": 1, "app.name": "inv"},
        f"app.web was {data.get('app.web')!r}",
    )
    check(data.get("app.store") == {"db.pool": 3}, f"app.store was {data.get('app.store')!r}")
    check(data.get("app.none") == {}, f"app.none was {data.get('app.none')!r}")
    seen = [e["key"] for e in ctx.get_history() if e["step"] == "apply"]
    check(
        seen == ["app.web", "app.store", "app.none", "app.components"],
        f"the apply step set {seen!r}",
    )
    check(
        data.get("app.components") == ["web", "store", "none"],
        f"app.components was {data.get('app.components')!r}",
    )


@case(
    "6.3",
    0.5,
    "ConfigApplierScriptlet.validate must refuse (StepNotRunError) an unvalidated or invalid "
    "configuration and a component key that is not loaded",
    rules=("6.3-x",),
    critical=True,
)
def test_6_3_applier_refuses(learner, scratch):
    config_files(scratch)
    unchecked = {**APPLY, "depends_on": ["load"]}
    cases = {
        "no validation step": [LOAD_CONFIG, unchecked],
        "a missing key": [
            LOAD_CONFIG,
            CHECK,
            {**APPLY, "args": {"components": {"web": ["app.port"]}}},
        ],
    }
    for why, steps in cases.items():
        path = write_recipe(scratch, steps, "r.yaml")
        ctx, _ = run_fails(learner, path, "StepNotRunError", CONFIG, detail=why)
        check(
            ctx.get("run.steps.apply.status") == "not_run", f"{why}: the apply step must be not_run"
        )
        check("app.components" not in ctx.keys(), f"{why}: nothing may be applied")
    ctx = learner.Context()
    ctx.set("config_meta.valid", False, who="grader")
    ctx.set("config.app.name", "x", who="grader")
    path = write_recipe(
        scratch,
        [{**APPLY, "depends_on": [], "args": {"components": {"w": ["app.name"]}}}],
        "f.yaml",
    )
    raises(
        lambda: run(learner, path, CONFIG, ctx=ctx), "StepNotRunError", "config_meta.valid is False"
    )
