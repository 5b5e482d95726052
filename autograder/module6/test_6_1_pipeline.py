"""Module 6's hidden suite, exercise 6.1: A data pipeline of four scriptlets. Instructor-only:
never released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import yaml
from _support import (
    CLEAN_ARGS,
    KEPT,
    LOAD,
    ORDERS,
    run,
    run_fails,
    step,
    user_data,
    write_recipe,
    writers,
)

from academy.bridge.client import LearnerException, expr
from academy.grading.cases import case, check, confirm, raises


def seeded(learner, items, who="grader"):
    ctx = learner.Context()
    for key, value in items.items():
        ctx.set(key, value, who=who)
    return ctx


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
