"""Recipe loading and validation: every problem at once, each naming step, field and line."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from framework0.errors import RecipeError, RecipeValidationError
from framework0.recipe_parser import (
    RECIPE_SCHEMA,
    LoadedRecipe,
    load_recipe,
    parse_recipe,
    parse_step,
    validate_recipe,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "framework0" / "recipes" / "example_numbers.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "recipes"


def step(name: str, idx: int, **extra: Any) -> dict[str, Any]:
    return {"idx": idx, "name": name, "module": "pkg.mod", "function": "Cls", **extra}


def problems(recipe: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(RecipeValidationError) as info:
        validate_recipe(recipe, **kwargs)
    return info.value.problems


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(RECIPE_SCHEMA)


def test_example_recipe_is_valid_and_parses_in_idx_order() -> None:
    recipe = load_recipe(EXAMPLE)
    assert isinstance(recipe, LoadedRecipe) and isinstance(recipe, dict)
    assert "lines" not in recipe  # lines travel beside the data, never in it
    assert yaml.safe_load(yaml.safe_dump(recipe)) == yaml.safe_load(EXAMPLE.read_text())
    validate_recipe(recipe)
    steps = parse_recipe(recipe)
    assert [s["name"] for s in steps] == ["compute_numbers", "compute_median"]
    assert steps[1]["depends_on"] == ["compute_numbers"]
    assert steps[1]["args"] == {} and steps[1]["timeout"] is None


def test_parse_recipe_sorts_by_idx_and_accepts_a_path() -> None:
    steps = parse_recipe(FIXTURES / "chain.yaml")
    assert [(s["idx"], s["name"]) for s in steps] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]


def test_every_problem_is_reported_with_step_field_and_line() -> None:
    path = FIXTURES / "invalid.yaml"
    with pytest.raises(RecipeValidationError) as info:
        validate_recipe(load_recipe(path))
    assert info.value.problems == [
        "step 'load' (line 6): field 'args': must be a mapping, got a list (['numbers.csv'])",
        "step 'load' (line 7): field 'retyr': unknown field 'retyr' (did you mean 'retry'?)",
        "step 'report' (line 8): field 'idx': duplicate idx 1 (also used by step 'load' on line 2)",
        "step 'report' (line 12): field 'depends_on[0]': unknown step 'lod' (did you mean 'load'?)",
        "step 'report' (line 13): field 'timeout': -5 is less than or equal to the minimum of 0",
    ]
    assert str(info.value).startswith(f"{path}: 5 problem(s)\n  - step 'load' (line 6)")


INVALID_PROBLEMS = [
    "step 'load' (line 6): field 'args': must be a mapping, got a list (['numbers.csv'])",
    "step 'load' (line 7): field 'retyr': unknown field 'retyr' (did you mean 'retry'?)",
    "step 'report' (line 8): field 'idx': duplicate idx 1 (also used by step 'load' on line 2)",
    "step 'report' (line 12): field 'depends_on[0]': unknown step 'lod' (did you mean 'load'?)",
    "step 'report' (line 13): field 'timeout': -5 is less than or equal to the minimum of 0",
]


def test_loaded_recipe_carries_its_source_and_the_line_of_every_part() -> None:
    recipe = load_recipe(FIXTURES / "invalid.yaml")
    assert recipe.source == str(FIXTURES / "invalid.yaml")
    assert recipe.lines[()] == 1
    assert recipe.lines[("steps", 1)] == 8
    assert recipe.lines[("steps", 1, "depends_on")] == 12
    assert recipe.lines[("steps", 1, "depends_on", 0)] == 12
    with pytest.raises(TypeError):
        recipe.lines[("steps",)] = 99  # type: ignore[index]
    # It is still the recipe's dict: equal to the data, serialized as a plain mapping.
    data = yaml.safe_load((FIXTURES / "invalid.yaml").read_text())
    assert recipe == data
    assert yaml.safe_dump(recipe, sort_keys=False) == yaml.safe_dump(data, sort_keys=False)
    assert yaml.dump(recipe) == yaml.dump(data)  # no !!python/object tag
    assert json.loads(json.dumps(recipe)) == data


def _write_recipe(folder: Path, n: int) -> Path:
    """A recipe with one unknown dependency, pushed down by ``n`` comment lines."""
    path = folder / f"r{n}.yaml"
    path.write_text(
        "#\n" * n + "steps:\n  - {idx: 1, name: a, module: m, function: F, depends_on: [zz]}\n"
    )
    return path


def test_lines_stay_with_each_loaded_recipe(tmp_path: Path) -> None:
    first = load_recipe(_write_recipe(tmp_path, 0))
    second = load_recipe(_write_recipe(tmp_path, 3))
    many = [load_recipe(_write_recipe(tmp_path, n)) for n in range(4, 104)]  # > 64 loads
    for recipe, line in [(first, 2), (second, 5), (many[0], 6), (many[-1], 105)]:
        assert problems(recipe) == [
            f"step 'a' (line {line}): field 'depends_on[0]': unknown step 'zz'"
        ]
    assert problems(first, source="mine.yaml") == problems(first)  # source only names it
    with pytest.raises(RecipeValidationError) as info:
        validate_recipe(first)
    assert info.value.source == str(tmp_path / "r0.yaml")


def test_copies_keep_lines_and_plain_copies_validate_without_them() -> None:
    recipe = load_recipe(FIXTURES / "invalid.yaml")
    for kept in (copy.copy(recipe), copy.deepcopy(recipe), pickle.loads(pickle.dumps(recipe))):
        assert type(kept) is LoadedRecipe and kept.lines == recipe.lines
        assert problems(kept) == INVALID_PROBLEMS
    for plain in (dict(recipe), recipe.copy()):
        assert type(plain) is dict
        with pytest.raises(RecipeValidationError) as info:
            validate_recipe(plain)
        assert info.value.source == "<recipe>"
        # The same problems, without lines, so in the order they were found.
        assert info.value.problems == [
            "step 'load': field 'retyr': unknown field 'retyr' (did you mean 'retry'?)",
            "step 'load': field 'args': must be a mapping, got a list (['numbers.csv'])",
            "step 'report': field 'timeout': -5 is less than or equal to the minimum of 0",
            "step 'report': field 'idx': duplicate idx 1 (also used by step 'load')",
            "step 'report': field 'depends_on[0]': unknown step 'lod' (did you mean 'load'?)",
        ]
    example = dict(load_recipe(EXAMPLE))
    validate_recipe(example)
    assert [s["name"] for s in parse_recipe(example)] == ["compute_numbers", "compute_median"]


def test_a_loaded_recipe_can_be_built_directly() -> None:
    recipe = LoadedRecipe(
        {"steps": [step("a", 1, depends_on=["b"])]},
        source="built.yaml",
        lines={("steps", 0): 4},
    )
    assert problems(recipe) == ["step 'a' (line 4): field 'depends_on[0]': unknown step 'b'"]
    with pytest.raises(RecipeValidationError) as info:
        validate_recipe(recipe)
    assert info.value.source == "built.yaml"
    assert LoadedRecipe() == {} and LoadedRecipe().lines == {} and LoadedRecipe().source is None


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("steps:\n  - idx: 1\n    name: x\n   module: y\n")
    with pytest.raises(RecipeValidationError) as info:
        load_recipe(path)
    assert info.value.source == str(path)
    assert info.value.problems[0].startswith("line 4, column 4: invalid YAML")


def test_repeated_yaml_key_is_an_error_not_silently_dropped(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("steps:\n  - idx: 1\n    name: a\n    name: b\n")
    with pytest.raises(
        RecipeValidationError, match=r"line 4: key 'steps\[0\]\.name' repeats line 3"
    ):
        load_recipe(path)


def test_missing_file_is_a_recipe_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert not isinstance(info.value, RecipeValidationError)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("text", "kind"), [("", "an empty file"), ("- 1\n", "a list")])
def test_document_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(RecipeValidationError, match=f"got {kind}"):
        load_recipe(path)


def test_dict_recipe_problems_have_no_line_and_default_source() -> None:
    with pytest.raises(RecipeValidationError) as info:
        validate_recipe({"steps": [step("a", 1, depends_on=["b"])]})
    assert info.value.source == "<recipe>"
    assert info.value.problems == ["step 'a': field 'depends_on[0]': unknown step 'b'"]
    assert problems({"steps": []}, source="mine.yaml") == ["field 'steps': [] should be non-empty"]
    assert problems({"stpes": []}) == ["recipe: missing required field 'steps'"]
    assert problems([1]) == ["a recipe must be a mapping with a 'steps' list, got a list"]


def test_duplicate_names_and_cycles_are_found() -> None:
    recipe = {
        "steps": [
            step("a", 1, depends_on=["c"]),
            step("b", 2, depends_on=["a"]),
            step("c", 3, depends_on=["b"]),
            step("a", 4),
        ]
    }
    assert problems(recipe) == [
        "step 'a': field 'name': duplicate step name 'a' (step #1)",
        "steps: dependency cycle: a -> b -> c -> a",
    ]


def test_missing_fields_and_bad_names_are_listed_once_each() -> None:
    recipe = {"steps": [{"idx": 1, "module": "a..b"}, step("has space", 2)]}
    assert problems(recipe) == [
        "step #1: missing required field 'name'",
        "step #1: missing required field 'function'",
        "step #1: field 'module': 'a..b' is not valid: must be a dotted Python module path "
        "like 'pkg.mod'",
        "step 'has space': field 'name': 'has space' is not valid: use letters, digits, '_' and "
        "'-' only (it becomes part of ctx keys)",
    ]


def test_reserved_arg_keys_and_bad_types() -> None:
    recipe = {"steps": [step("a", 1, args={"_recipe_dir": "/"}, retry={"max": "2"})]}
    assert problems(recipe) == [
        "step 'a': field 'args': key '_recipe_dir' is reserved: keys starting with '_' are set "
        "by the runner",
        "step 'a': field 'retry.max': must be an integer, got a string ('2')",
    ]
    assert problems({"steps": [step("a", True)]}) == [
        "step 'a': field 'idx': must be an integer, got a boolean (True)"
    ]


def test_parse_step_fills_defaults_and_copies() -> None:
    raw = step("a", 1, args={"nested": {"x": 1}}, retry={"max": 2})
    parsed = parse_step(raw)
    assert parsed == {
        "idx": 1,
        "name": "a",
        "module": "pkg.mod",
        "function": "Cls",
        "args": {"nested": {"x": 1}},
        "depends_on": [],
        "retry": {"max": 2, "delay_sec": 0},
        "timeout": None,
        "success": {"ctx_has_keys": []},
    }
    parsed["args"]["nested"]["x"] = 99
    assert raw["args"]["nested"]["x"] == 1
    assert parse_step(step("b", 2))["retry"] == {"max": 0, "delay_sec": 0}


def test_parse_step_validates_the_step() -> None:
    with pytest.raises(RecipeValidationError) as info:
        parse_step(step("a", 1, timeout="soon"))
    assert info.value.source == "step 'a'"
    assert info.value.problems == [
        "field 'timeout': must be a number or null, got a string ('soon')"
    ]


def test_validation_does_not_modify_the_recipe() -> None:
    recipe = {"steps": [step("b", 2, depends_on=["a"]), step("a", 1)]}
    before = copy.deepcopy(recipe)
    assert [s["name"] for s in parse_recipe(recipe)] == ["a", "b"]
    assert recipe == before
