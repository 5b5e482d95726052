"""Recipes: YAML files listing the steps a run performs.

A recipe is validated as a whole before anything runs, and every problem is reported
at once with the step, the field and the YAML line, so a typo costs one edit, not one
run per mistake::

    test_meta: {test_id: NUM-1, tester: me, description: stats of a CSV}   # optional
    steps:
      - idx: 1                                    # sort key; unique
        name: compute_numbers                     # unique; used by depends_on and --only
        module: framework0.scriptlets.steps.compute_numbers
        function: ComputeNumbers                  # a BaseScriptlet subclass in that module
        args: {src: numbers.csv}                  # optional; keys starting with "_" are reserved
        depends_on: []                            # optional
        retry: {max: 2, delay_sec: 0.1}           # optional: extra attempts after a failure
        timeout: 5                                # optional, seconds per attempt
        success: {ctx_has_keys: [numbers.stats]}  # optional: keys the step must leave in ctx
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml
from yaml.representer import Representer, SafeRepresenter

from framework0._json import short_repr
from framework0.dependency_graph import DependencyGraph
from framework0.errors import CycleError, RecipeError, RecipeValidationError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

__all__ = [
    "RECIPE_SCHEMA",
    "LoadedRecipe",
    "load_recipe",
    "parse_recipe",
    "parse_step",
    "validate_recipe",
]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"

STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["idx", "name", "module", "function"],
    "additionalProperties": False,
    "properties": {
        "idx": {"type": "integer"},
        "name": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_-]*$",
            "description": "use letters, digits, '_' and '-' only (it becomes part of ctx keys)",
        },
        "module": {
            "type": "string",
            "pattern": rf"^{_IDENT}(\.{_IDENT})*$",
            "description": "must be a dotted Python module path like 'pkg.mod'",
        },
        "function": {
            "type": "string",
            "pattern": rf"^{_IDENT}$",
            "description": "must be a Python class name",
        },
        "args": {
            "type": "object",
            "propertyNames": {"pattern": "^[^_]"},
            "description": "keys starting with '_' are reserved for the runner",
        },
        "depends_on": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "retry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max": {"type": "integer", "minimum": 0},
                "delay_sec": {"type": "number", "minimum": 0},
            },
        },
        "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "success": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ctx_has_keys": {"type": "array", "items": {"type": "string", "minLength": 1}},
            },
        },
    },
}

RECIPE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "framework0 recipe",
    "type": "object",
    "required": ["steps"],
    "properties": {
        "test_meta": {
            "type": "object",
            "properties": {
                "test_id": {"type": ["string", "integer"]},
                "tester": {"type": "string"},
                "description": {"type": "string"},
            },
        },
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
    },
    "$defs": {"step": STEP_SCHEMA},
}

_STEP_DEFAULTS: dict[str, Any] = {
    "args": {},
    "depends_on": [],
    "retry": {"max": 0, "delay_sec": 0},
    "timeout": None,
    "success": {"ctx_has_keys": []},
}


@functools.cache
def _validator(schema: str) -> Draft202012Validator:
    """Import jsonschema on first use: with some optional extras installed its import
    takes seconds, which ``import framework0`` should not pay."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(RECIPE_SCHEMA if schema == "recipe" else STEP_SCHEMA)


# ---------------------------------------------------------------------- loaded recipes
_Path = tuple[Any, ...]


class LoadedRecipe(dict[str, Any]):
    """A recipe as ``load_recipe`` read it: the data, plus where each part was written.

    It is the recipe's dict: it compares equal to the plain data, ``json.dumps`` and
    ``yaml.safe_dump`` write it as an ordinary mapping, and it can be edited like any
    dict. Beside the data it carries

    ``source``
        the file it was read from (``None`` if not given);
    ``lines``
        a read-only mapping from a JSON path such as ``("steps", 2, "depends_on")`` to
        the 1-based YAML line where that part starts (``()`` is the document itself).

    ``validate_recipe`` reports lines for this object and for its ``copy.copy`` /
    ``copy.deepcopy`` copies; a plain copy (``dict(recipe)``, ``recipe.copy()``)
    validates the same, without lines. The lines describe the file as read, so after
    an edit they may point at the text that was replaced.
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        source: str | None = None,
        lines: Mapping[_Path, int] | None = None,
    ) -> None:
        super().__init__(data or {})
        self._source = source
        self._lines = dict(lines or {})

    @property
    def source(self) -> str | None:
        """The file the recipe was read from."""
        return self._source

    @property
    def lines(self) -> Mapping[_Path, int]:
        """JSON path -> 1-based YAML line, e.g. ``lines[("steps", 0, "name")] == 3``."""
        return MappingProxyType(self._lines)


# PyYAML's representers look a type up exactly, so without these ``yaml.safe_dump`` of a
# loaded recipe would fail (and ``yaml.dump`` would tag it as a Python object).
SafeRepresenter.add_representer(LoadedRecipe, SafeRepresenter.represent_dict)
Representer.add_representer(LoadedRecipe, Representer.represent_dict)


def _record_lines(node: yaml.Node, path: _Path, lines: dict[_Path, int]) -> None:
    """Map every JSON path of the document to the 1-based line where it starts."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines[path + (key_node.value,)] = key_node.start_mark.line + 1
                _record_lines(value_node, path + (key_node.value,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, path + (i,), lines)


def _duplicate_keys(node: yaml.Node, path: _Path, found: list[tuple[int, str]]) -> None:
    """YAML silently keeps the last of two equal keys; a recipe should say so instead."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    where = _dotted(path + (key_node.value,))
                    found.append(
                        (line, f"line {line}: key {where!r} repeats line {seen[key_node.value]}")
                    )
                else:
                    seen[key_node.value] = line
            _duplicate_keys(value_node, path + (getattr(key_node, "value", "?"),), found)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, path + (i,), found)


# ---------------------------------------------------------------------- loading
def load_recipe(path: str | os.PathLike[str]) -> LoadedRecipe:
    """Read a recipe file into a ``LoadedRecipe``: its dict, carrying each part's YAML line.

    The lines travel with the returned object, so ``validate_recipe`` can report
    ``step 'load' (line 12): ...``. A missing file raises ``RecipeError``; bad YAML,
    repeated keys or a document that is not a mapping raise ``RecipeValidationError``.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe file not found: {source}") from None
    except IsADirectoryError:
        raise RecipeError(f"recipe path is a directory, not a file: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {source}: {exc}") from None

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = ": ".join(p for p in (exc.context, exc.problem) if p)
        raise RecipeValidationError(source, [f"{line}invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise RecipeValidationError(source, [f"invalid YAML: {exc}"]) from None
    finally:
        loader.dispose()

    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise RecipeValidationError(
            source, [f"a recipe must be a mapping with a 'steps' list, got {kind}"]
        )
    assert node is not None
    duplicates: list[tuple[int, str]] = []
    _duplicate_keys(node, (), duplicates)
    if duplicates:
        raise RecipeValidationError(source, [msg for _, msg in sorted(duplicates)])
    lines: dict[_Path, int] = {}
    _record_lines(node, (), lines)
    return LoadedRecipe(data, source=source, lines=lines)


# ---------------------------------------------------------------------- validation
_JSON_TYPES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _label(recipe: Any, path: _Path, lines: Mapping[_Path, int]) -> tuple[str, int | None]:
    """``step 'load' (line 12): field 'args'`` for a JSON path, and the line used."""
    line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
    at = f" (line {line})" if line else ""
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        step = _step_at(recipe, path[1])
        name = step.get("name") if isinstance(step, dict) else None
        who = f"step {name!r}" if isinstance(name, str) and name else f"step #{path[1] + 1}"
        field = _dotted(path[2:])
        return f"{who}{at}" + (f": field {field!r}" if field else ""), line
    field = _dotted(path)
    return (f"field {field!r}{at}" if field else f"recipe{at}"), line


def _step_at(recipe: Any, i: int) -> Any:
    steps = recipe.get("steps") if isinstance(recipe, dict) else None
    return steps[i] if isinstance(steps, list) and i < len(steps) else None


def _dotted(path: _Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: ValidationError) -> list[tuple[_Path, str]]:
    """Turn one jsonschema error into (path, readable problem) pairs."""
    path = tuple(error.absolute_path)
    kind = error.validator
    if "propertyNames" in error.schema_path:
        return [
            (
                path,
                f"key {error.instance!r} is reserved: keys starting with '_' are set by the runner",
            )
        ]
    if kind == "required" and isinstance(error.instance, dict):
        missing = [r for r in error.validator_value if r not in error.instance]
        return [(path, f"missing required field {name!r}") for name in missing]
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        out = []
        for extra in error.instance:
            if extra not in known:
                hint = difflib.get_close_matches(str(extra), known, n=1)
                tip = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(known)})"
                out.append((path + (extra,), f"unknown field {extra!r}{tip}"))
        return out
    if kind == "type":
        wanted = error.validator_value
        wanted = [wanted] if isinstance(wanted, str) else wanted
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
        got = _JSON_TYPES.get(type(error.instance), type(error.instance).__name__)
        return [(path, f"must be {words}, got {got} ({short_repr(error.instance)})")]
    if kind == "pattern" and "description" in error.schema:
        return [(path, f"{error.instance!r} is not valid: {error.schema['description']}")]
    return [(path, error.message)]


class _Findings:
    """The problems found in one recipe, reported sorted by YAML line, then as found.

    Problems without a line sort last; a message found twice is reported once (jsonschema's
    "required" can repeat itself).
    """

    def __init__(self, recipe: dict[str, Any], lines: Mapping[_Path, int]) -> None:
        self.recipe = recipe
        self.lines = lines
        self._found: list[tuple[float, int, str]] = []  # (line, order, message)

    def add(self, path: _Path, message: str) -> None:
        """Record a problem at ``path``, labelled with its step, field and line."""
        label, line = _label(self.recipe, path, self.lines)
        self._found.append((line or float("inf"), len(self._found), f"{label}: {message}"))

    def add_unplaced(self, message: str) -> None:
        """Record a problem of the recipe as a whole, reported after every placed one."""
        self._found.append((float("inf"), len(self._found), message))

    def messages(self) -> list[str]:
        return list(dict.fromkeys(msg for *_, msg in sorted(self._found)))


def _problems(recipe: Any, lines: Mapping[_Path, int]) -> list[str]:
    if not isinstance(recipe, Mapping):
        got = _JSON_TYPES.get(type(recipe), type(recipe).__name__)
        return [f"a recipe must be a mapping with a 'steps' list, got {got}"]
    recipe = dict(recipe)
    findings = _Findings(recipe, lines)
    _check_schema(recipe, findings)
    steps = recipe.get("steps")
    if isinstance(steps, list):
        # Cross-step checks on whatever is well-formed enough to check.
        names = _check_uniqueness(steps, findings)
        _check_dependencies(steps, names, findings)
    return findings.messages()


def _check_schema(recipe: dict[str, Any], findings: _Findings) -> None:
    """Report every way ``recipe`` departs from ``RECIPE_SCHEMA``."""
    for error in _validator("recipe").iter_errors(recipe):
        for path, message in _describe(error):
            findings.add(path, message)


def _check_uniqueness(steps: list[Any], findings: _Findings) -> dict[str, int]:
    """Report repeated step names and idx values; return each name's first step index.

    Both are checked step by step, so a step's repeated name is reported before its
    repeated idx and problems on no known line keep the order of the steps.
    """
    names: dict[str, int] = {}
    idxs: dict[int, int] = {}
    for i, step in enumerate(steps):
        if isinstance(step, dict):
            _check_unique_name(step, i, names, findings)
            _check_unique_idx(steps, i, idxs, findings)
    return names


def _check_unique_name(
    step: dict[str, Any], i: int, names: dict[str, int], findings: _Findings
) -> None:
    """Report step ``i``'s name if an earlier step has it, else remember it in ``names``."""
    name = step.get("name")
    if not isinstance(name, str) or not name:
        return
    if name not in names:
        names[name] = i
        return
    first = findings.lines.get(("steps", names[name]))
    where = f" (first used on line {first})" if first else f" (step #{names[name] + 1})"
    findings.add(("steps", i, "name"), f"duplicate step name {name!r}{where}")


def _check_unique_idx(steps: list[Any], i: int, idxs: dict[int, int], findings: _Findings) -> None:
    """Report step ``i``'s idx if an earlier step has it, else remember it in ``idxs``."""
    idx = steps[i].get("idx")
    if not isinstance(idx, int) or isinstance(idx, bool):
        return
    if idx not in idxs:
        idxs[idx] = i
        return
    other = steps[idxs[idx]].get("name", f"#{idxs[idx] + 1}")
    first = findings.lines.get(("steps", idxs[idx]))
    at = f" on line {first}" if first else ""
    findings.add(("steps", i, "idx"), f"duplicate idx {idx} (also used by step {other!r}{at})")


def _check_dependencies(steps: list[Any], names: dict[str, int], findings: _Findings) -> None:
    """Report ``depends_on`` entries naming no step, then a cycle among the known ones."""
    graph = DependencyGraph()
    for i, step in enumerate(steps):
        deps = _step_dependencies(step)
        _check_known_dependencies(i, deps, names, findings)
        name = step.get("name") if isinstance(step, dict) else None
        if isinstance(name, str) and names.get(name) == i:
            graph.add_task(name, [d for d in deps if d in names])
    _check_cycle(graph, names, findings)


def _step_dependencies(step: Any) -> list[str]:
    """The names in a step's ``depends_on`` that are strings (the schema reports the rest)."""
    deps = step.get("depends_on", []) if isinstance(step, dict) else []
    return [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []


def _check_known_dependencies(
    i: int, deps: list[str], names: dict[str, int], findings: _Findings
) -> None:
    """Report each dependency of step ``i`` that names no step, with a likely intended one."""
    for j, dep in enumerate(deps):
        if dep not in names:
            hint = difflib.get_close_matches(dep, list(names), n=1)
            tip = f" (did you mean {hint[0]!r}?)" if hint else ""
            findings.add(("steps", i, "depends_on", j), f"unknown step {dep!r}{tip}")


def _check_cycle(graph: DependencyGraph, names: dict[str, int], findings: _Findings) -> None:
    """Report a dependency cycle, with the lines of its steps when all of them are known."""
    try:
        graph.get_task_order()
    except CycleError as exc:
        cycle_lines = [findings.lines.get(("steps", names[n])) for n in exc.cycle[:-1]]
        where = f" (lines {', '.join(map(str, cycle_lines))})" if all(cycle_lines) else ""
        findings.add_unplaced(f"steps: {exc}{where}")


def validate_recipe(recipe: Mapping[str, Any], source: str | None = None) -> None:
    """Raise ``RecipeValidationError`` listing every problem of ``recipe``, or return None.

    Checks the schema (``RECIPE_SCHEMA``), unique step names and idx values, that
    ``depends_on`` names exist, and that dependencies form no cycle. ``source`` names
    the recipe in the message; it defaults to the file ``load_recipe`` read, else
    ``"<recipe>"``. Line numbers appear for a ``LoadedRecipe`` (what ``load_recipe``
    returns); a plain dict, such as ``dict(load_recipe(path))``, is checked the same
    way and its problems carry no line.
    """
    loaded = recipe if isinstance(recipe, LoadedRecipe) else LoadedRecipe()
    problems = _problems(recipe, loaded.lines)
    if problems:
        raise RecipeValidationError(source or loaded.source or "<recipe>", problems)


# ---------------------------------------------------------------------- normalizing
def parse_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """Return a validated copy of one step with every optional field filled in.

    The copy is deep, so a runner may hand ``args`` to a scriptlet without the
    scriptlet being able to change the recipe.
    """
    if not isinstance(step, Mapping):
        raise RecipeValidationError("<step>", [f"a step must be a mapping, got {short_repr(step)}"])
    step = dict(step)
    name = step.get("name")
    label = f"step {name!r}" if isinstance(name, str) else "<step>"
    problems = [
        f"field {_dotted(path)!r}: {msg}" if path else msg
        for error in _validator("step").iter_errors(step)
        for path, msg in _describe(error)
    ]
    if problems:
        raise RecipeValidationError(label, problems)
    step = copy.deepcopy(step)
    defaults = copy.deepcopy(_STEP_DEFAULTS)
    return {
        "idx": int(step["idx"]),  # JSON Schema accepts 2.0 as an integer
        "name": step["name"],
        "module": step["module"],
        "function": step["function"],
        "args": step.get("args", defaults["args"]),
        "depends_on": step.get("depends_on", defaults["depends_on"]),
        "retry": {**defaults["retry"], **step.get("retry", {})},
        "timeout": step.get("timeout", defaults["timeout"]),
        "success": {**defaults["success"], **step.get("success", {})},
    }


def parse_recipe(recipe: Mapping[str, Any] | str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Validate a recipe (a dict, or a path to load) and return its steps sorted by idx."""
    if isinstance(recipe, (str, os.PathLike)):
        recipe = load_recipe(recipe)
    validate_recipe(recipe)
    return sorted((parse_step(step) for step in recipe["steps"]), key=lambda s: s["idx"])
