"""framework0's public surface: explicit exports and one error root."""

from __future__ import annotations

import inspect

import framework0
from framework0 import errors


def test_all_is_exactly_the_public_names():
    public = {name for name in dir(framework0) if not name.startswith("_")}
    modules = {name for name, value in vars(framework0).items() if inspect.ismodule(value)}
    assert set(framework0.__all__) - {"__version__"} == public - modules
    assert sorted(framework0.__all__) == framework0.__all__
    for name in framework0.__all__:
        assert getattr(framework0, name) is not None


def test_every_error_derives_from_the_root_and_is_drawn_in_the_tree():
    tree = errors.__doc__
    classes = [
        c
        for c in vars(errors).values()
        if inspect.isclass(c) and issubclass(c, Exception) and c.__module__ == errors.__name__
    ]
    assert len(classes) >= 15
    for cls in classes:
        assert issubclass(cls, framework0.Framework0Error)
        assert cls.__name__ in tree, f"{cls.__name__} is missing from the tree in errors.py"
        assert getattr(framework0, cls.__name__) is cls


def test_errors_behave_like_the_builtins_callers_expect():
    assert issubclass(framework0.NotJSONError, TypeError)
    assert issubclass(framework0.ContextDecodeError, ValueError)
    assert issubclass(framework0.UnknownTaskError, KeyError)
    assert issubclass(framework0.CycleError, ValueError)


def test_load_recipe_returns_the_exported_loaded_recipe_type():
    from framework0.recipe_parser import LoadedRecipe

    assert framework0.LoadedRecipe is LoadedRecipe
    assert issubclass(framework0.LoadedRecipe, dict)
    assert inspect.signature(framework0.load_recipe).return_annotation in (
        "LoadedRecipe",
        LoadedRecipe,
    )


def test_importing_the_package_leaves_yaml_and_http_for_first_use():
    """Every grading kernel and hidden-suite worker imports framework0; PyYAML and the HTTP
    client were two thirds of that import. They load when a recipe or a bus is first used."""
    import subprocess
    import sys

    heavy = ("yaml", "http.client", "urllib.request", "framework0.recipe_parser")
    probe = (
        f"import sys, framework0; print(sorted(m for m in {heavy!r} if m in sys.modules)); "
        "framework0.parse_recipe; framework0.MemoryBus('http://127.0.0.1:9')._request; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == str(sorted(["yaml", "framework0.recipe_parser"]))
