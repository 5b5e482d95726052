"""Number statistics from a CSV file: the scriptlets behind ``recipes/example_numbers.yaml``.

``ComputeNumbers`` writes ``numbers.values`` (the list) and ``numbers.stats``
(count, mean, population variance, min, max); ``ComputeMedian`` reads
``numbers.values`` and writes ``numbers.median``, so it must depend on the first step.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from framework0.context import Context
from framework0.scriptlets.base import BaseScriptlet

__all__ = ["ComputeMedian", "ComputeNumbers", "read_numbers"]


def read_numbers(path: Path, header: bool = False) -> list[int | float]:
    """Every cell of a CSV file as a number, row by row; blank lines and ``#`` lines skipped.

    A bad cell raises ``ValueError`` naming the file, line and column, because "could
    not convert string to float" alone does not say where to look.
    """
    values: list[int | float] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for row in reader:
            line = reader.line_num
            if header and line == 1:
                continue
            if not row or row[0].lstrip().startswith("#"):
                continue
            for col, cell in enumerate(row, start=1):
                values.append(_number(cell.strip(), path, line, col))
    return values


def _number(cell: str, path: Path, line: int, col: int) -> int | float:
    if cell == "":
        raise ValueError(f"{path}, line {line}, column {col}: empty cell")
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{path}, line {line}, column {col}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}, line {line}, column {col}: {cell!r} is not a finite number")
    return value


class ComputeNumbers(BaseScriptlet):
    """Load numbers from ``src`` (relative to the recipe's folder) and store their statistics.

    Params: ``src`` (required) CSV path; ``header`` (optional, default false) skips line 1.
    """

    required_params = ("src",)

    def validate(self, ctx: Context, params: Mapping[str, Any]) -> None:
        """A missing file means the step cannot run at all, so report it before ``run``."""
        super().validate(ctx, params)
        if not isinstance(params["src"], str) or not params["src"]:
            raise ValueError(f"{self.name}: param 'src' must be a file path, got {params['src']!r}")
        path = self.resolve_path(params, params["src"])
        if not path.is_file():
            raise ValueError(f"{self.name}: src file not found: {path}")

    def run(self, ctx: Context, params: Mapping[str, Any]) -> int:
        path = self.resolve_path(params, params["src"])
        values = read_numbers(path, header=bool(params.get("header", False)))
        if not values:
            raise ValueError(f"{path}: no numbers found")
        stats = {
            "count": len(values),
            "mean": statistics.fmean(values),
            "variance": float(statistics.pvariance(values)),
            "min": min(values),
            "max": max(values),
        }
        who = self.step_name(params)
        ctx.set("numbers.values", values, who=who)
        ctx.set("numbers.stats", stats, who=who)
        return 0


class ComputeMedian(BaseScriptlet):
    """Store the median of ``numbers.values`` as ``numbers.median``."""

    def validate(self, ctx: Context, params: Mapping[str, Any]) -> None:
        super().validate(ctx, params)
        values = ctx.get("numbers.values")
        if not isinstance(values, list) or not values:
            raise ValueError(
                f"{self.name}: ctx key 'numbers.values' must be a non-empty list, got "
                f"{values!r}; run ComputeNumbers first (depends_on)"
            )

    def run(self, ctx: Context, params: Mapping[str, Any]) -> int:
        median = statistics.median(ctx.get("numbers.values"))
        ctx.set("numbers.median", median, who=self.step_name(params))
        return 0
