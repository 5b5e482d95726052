"""Module 6's hidden suite, exercise 6.3: Layered configuration. Instructor-only: never released to
learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml
from _support import run, run_fails, step, user_data, write_recipe

from academy.bridge.client import expr
from academy.grading.cases import case, changed_in_worker, check, raises, read_back

CONFIG = ("ConfigLoaderScriptlet", "ConfigValidatorScriptlet", "ConfigApplierScriptlet")


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
