"""Widgets that make framework0's behaviour visible in a notebook."""

from __future__ import annotations

import ast
import html
from typing import Any

import ipywidgets as widgets

from framework0 import Context

__all__ = ["ContextInspector"]


class ContextInspector(widgets.VBox):
    """A live view of a Context: set keys by hand and watch the dotted-key tree update.

    Values are typed as Python literals, so you can also try what JSON cannot hold
    (``{1, 2}``, ``float('nan')`` is not a literal, but ``{1: 'a'}`` is) and read the
    error the Context gives back.
    """

    def __init__(self, ctx: Context, who: str = "inspector") -> None:
        self.ctx = ctx
        self.key = widgets.Text(description="key", placeholder="app.config.debug")
        self.value = widgets.Text(description="value", placeholder="True, 42, 'text', [1, 2]")
        self.who = widgets.Text(description="who", value=who)
        self.button = widgets.Button(description="set", button_style="primary")
        self.status = widgets.HTML()
        self.view = widgets.HTML()
        self.button.on_click(lambda _: self.apply())
        super().__init__(
            [
                widgets.HBox([self.key, self.value]),
                widgets.HBox([self.who, self.button]),
                self.status,
                self.view,
            ]
        )
        self.refresh()

    def apply(self) -> None:
        """Set the typed key to the typed value; show the outcome, success or error."""
        try:
            value: Any = ast.literal_eval(self.value.value) if self.value.value.strip() else None
        except (ValueError, SyntaxError) as exc:
            self.status.value = (
                f"<span style='color:#b00'>not a Python literal: {html.escape(str(exc))}</span>"
            )
            return
        try:
            self.ctx.set(self.key.value, value, who=self.who.value or None)
        except (TypeError, ValueError) as exc:
            self.status.value = (
                f"<span style='color:#b00'>{type(exc).__name__}: {html.escape(str(exc))}</span>"
            )
        else:
            self.status.value = (
                f"<span style='color:#070'>set {html.escape(repr(self.key.value))}</span>"
            )
        self.refresh()

    def refresh(self) -> None:
        self.view.value = self.ctx._repr_html_()
