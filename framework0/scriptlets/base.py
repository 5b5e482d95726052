"""BaseScriptlet: the contract between a recipe step and the runner.

The runner calls ``validate`` first (a failure there means the step *could not run*),
then ``run`` (an exception or a non-zero return means the step *failed*). Keeping the
two apart tells a user whether to fix the recipe or the data.

The runner adds two reserved entries to ``params`` next to the step's ``args``:

* ``_step``: the step's name; write with ``ctx.set(key, value, who=self.step_name(params))``
  so the context history says which step produced each value;
* ``_recipe_dir``: the absolute folder of the recipe file; ``self.resolve_path(params, p)``
  resolves relative paths in ``args`` against it, so a recipe and its data files can
  move together and still run from any working directory.

Called directly (in a notebook, a test) without those entries, the helpers fall back to
the class ``name`` and the current directory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from framework0.context import Context

__all__ = ["BaseScriptlet"]


class BaseScriptlet(ABC):
    """Subclass it, list ``required_params`` and implement ``run``; return 0 for success."""

    name: ClassVar[str] = "BaseScriptlet"
    """Shown in messages; defaults to the class name."""
    required_params: ClassVar[tuple[str, ...]] = ()
    """Keys ``params`` must hold; the default ``validate`` checks them."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:  # an inherited name would mislabel the subclass
            cls.name = cls.__name__

    def validate(self, ctx: Context, params: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` when the step cannot run; by default checks required params."""
        missing = [p for p in self.required_params if p not in params]
        if missing:
            names = ", ".join(repr(p) for p in missing)
            raise ValueError(f"{self.name}: missing required param(s) {names} in args")

    @abstractmethod
    def run(self, ctx: Context, params: Mapping[str, Any]) -> int:
        """Do the work, writing results into ``ctx``; return 0 on success."""

    # ---------------------------------------------------------------- helpers
    def step_name(self, params: Mapping[str, Any]) -> str:
        """The ``who`` for ``ctx.set``: the recipe step's name, else the scriptlet's."""
        return str(params.get("_step") or self.name)

    @staticmethod
    def resolve_path(params: Mapping[str, Any], path: str | Path) -> Path:
        """``path`` as given if absolute, else relative to the recipe's folder."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        return Path(params.get("_recipe_dir") or Path.cwd()) / p

    def __repr__(self) -> str:
        return f"<{type(self).__name__} scriptlet {self.name!r}>"
