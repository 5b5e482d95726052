"""framework0: shared Context state, dependency graphs, recipes, a runner and persistence.

The public API is exactly the names in ``__all__``; a test guards the list.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from framework0.context import Context
from framework0.dependency_graph import DependencyGraph
from framework0.errors import (
    BusError,
    ContextDecodeError,
    ContextError,
    CorruptStateError,
    CycleError,
    Framework0Error,
    GraphError,
    InvalidKeyError,
    NotJSONError,
    PersistenceError,
    RecipeError,
    RecipeValidationError,
    RunError,
    StepFailedError,
    StepNotRunError,
    UnknownTaskError,
)
from framework0.logger import get_logger
from framework0.memory_bus import MemoryBus
from framework0.persistence import Persistence, atomic_write, clean_temp_files
from framework0.scriptlets import BaseScriptlet

if _TYPE_CHECKING:  # imported on first use (below): PyYAML is most of the package's import
    from framework0.recipe_parser import (
        LoadedRecipe,
        load_recipe,
        parse_recipe,
        parse_step,
        validate_recipe,
    )
    from framework0.runner import run_recipe

_RECIPES = ("LoadedRecipe", "load_recipe", "parse_recipe", "parse_step", "validate_recipe")

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The runner is imported on first use, so `python -m framework0.runner` does not find
    # itself already imported (and warn) when the package initialises. The recipe functions
    # are too: the recipe parser imports PyYAML, which a program using only Context, the
    # graph or persistence never needs (about 25 ms of every `import framework0`).
    if name == "run_recipe":
        from framework0.runner import run_recipe

        return run_recipe
    if name in _RECIPES:
        from framework0 import recipe_parser

        return getattr(recipe_parser, name)
    raise AttributeError(f"module 'framework0' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "BaseScriptlet",
    "BusError",
    "Context",
    "ContextDecodeError",
    "ContextError",
    "CorruptStateError",
    "CycleError",
    "DependencyGraph",
    "Framework0Error",
    "GraphError",
    "InvalidKeyError",
    "LoadedRecipe",
    "MemoryBus",
    "NotJSONError",
    "Persistence",
    "PersistenceError",
    "RecipeError",
    "RecipeValidationError",
    "RunError",
    "StepFailedError",
    "StepNotRunError",
    "UnknownTaskError",
    "__version__",
    "atomic_write",
    "clean_temp_files",
    "get_logger",
    "load_recipe",
    "parse_recipe",
    "parse_step",
    "run_recipe",
    "validate_recipe",
]
