"""The learner's progress dashboard, for any notebook cell::

    from academy.dashboard import ProgressDashboard
    ProgressDashboard()

It shows each module's latest ``f0 check`` score against its pass mark, the certification
levels (reached, in progress, not available yet) and what the next level still needs. The
**check** button saves nothing and trusts nothing in the kernel: it runs ``f0 check`` in a
separate process on the notebook file as last saved, like the terminal command.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import ipywidgets as widgets

from academy import manifest
from academy.learner.progress import ModuleRecord, ProgressStore, level_inputs
from academy.levels import LevelRules, LevelState, LevelStatus, pass_mark, passes, reaches_mark

__all__ = ["ProgressDashboard"]

_LEVEL_COLOURS = {"bronze": "#b87333", "silver": "#8e9aa6", "gold": "#c9a227"}


class ProgressDashboard(widgets.VBox):
    """Module scores, levels reached and the next step, refreshed on demand."""

    def __init__(self, root: Path | None = None) -> None:
        self.course = manifest.load(root)
        self.store = ProgressStore(self.course)
        self.rules = LevelRules(self.course)
        self.title = widgets.HTML(f"<h3 style='margin:4px 0'>{html.escape(self.course.title)}</h3>")
        self.bars = {
            m.id: widgets.FloatProgress(min=0, max=m.points, layout=widgets.Layout(width="40%"))
            for m in self.course.modules
        }
        self.labels = {m.id: widgets.HTML() for m in self.course.modules}
        rows = [
            widgets.HBox(
                [
                    widgets.HTML(
                        f"<b>Module {m.number}</b> {html.escape(m.title)}",
                        layout=widgets.Layout(width="38%"),
                    ),
                    self.bars[m.id],
                    self.labels[m.id],
                ]
            )
            for m in self.course.modules
        ]
        self.levels = widgets.HTML()
        self.module_choice = widgets.Dropdown(
            options=[(f"module {m.number}", m.id) for m in self.course.modules],
            layout=widgets.Layout(width="140px"),
        )
        self.check_button = widgets.Button(description="check", button_style="primary")
        self.refresh_button = widgets.Button(description="refresh")
        self.status = widgets.HTML()
        self.check_button.on_click(lambda _: self.check(self.module_choice.value))
        self.refresh_button.on_click(lambda _: self.refresh())
        super().__init__(
            [
                self.title,
                *rows,
                self.levels,
                widgets.HBox([self.module_choice, self.check_button, self.refresh_button]),
                self.status,
            ]
        )
        self.add_class("f0-dashboard")
        self.refresh()

    def refresh(self) -> None:
        """Re-read ``.f0/progress.json`` and redraw."""
        records = self.store.records()
        for module in self.course.modules:
            record = records.get(module.id)
            self.bars[module.id].value = record.score if record else 0
            self.bars[module.id].bar_style = (
                "success"
                if record and passes(module, record.score, record.critical_failed)
                else "danger"
                if record and record.critical_failed and reaches_mark(module, record.score)
                else "info"
            )
            self.labels[module.id].value = self._label(module, record)
        self.levels.value = self._levels_html(self.rules.statuses(*level_inputs(records)))

    def check(self, module_id: str) -> dict | None:
        """Grade the saved notebook of ``module_id`` with ``f0 check``; returns its report."""
        self.status.value = f"checking {html.escape(module_id)} (save the notebook first)…"
        proc = subprocess.run(
            [sys.executable, "-m", "academy.cli", "check", module_id, "--json"],
            cwd=self.course.root,
            capture_output=True,
            text=True,
            timeout=900,
        )
        try:  # `f0 check --json` prints the report alone on stdout
            report = json.loads(proc.stdout) if proc.stdout.strip() else None
        except ValueError:
            report = None
        self.refresh()  # the rows first: the status line says the check is over
        if report is None:
            tail = html.escape((proc.stdout + proc.stderr)[-600:])
            self.status.value = f"<span style='color:#b3261e'>check failed:</span><pre>{tail}</pre>"
        else:
            self.status.value = (
                f"{html.escape(module_id)}: {report['score']:g} / {report['max_points']:g}"
            )
        return report

    def _label(self, module: manifest.Module, record: ModuleRecord | None) -> str:
        if record is None:
            return "<span style='color:#778'>not checked yet</span>"
        mark = "✓" if passes(module, record.score, record.critical_failed) else "✗"
        changed = " · <i>changed since</i>" if record.notebook_changed(self.course.root) else ""
        blocked = ""
        if record.critical_failed:
            names = html.escape("; ".join(record.critical_failed))
            blocked = (
                f" <span style='color:#b3261e' title='{names}'>⛔ "
                f"{len(record.critical_failed)} critical check(s) failed: blocks the level</span>"
            )
        return (
            f"{mark} {record.score:g} / {module.points:g} "
            f"<span style='color:#778'>(pass {pass_mark(module):g}){changed}"
            f"</span>{blocked}"
        )

    def _levels_html(self, statuses: list[LevelStatus]) -> str:
        parts = []
        for status in statuses:
            level = status.level
            colour = _LEVEL_COLOURS.get(level.id, "#3d6b9e")
            if status.state is LevelState.REACHED:
                style = f"background:{colour};color:white"
            elif status.state is LevelState.IN_PROGRESS:
                style = f"border:2px solid {colour};color:{colour}"
            else:
                style = "border:2px dashed #bbb;color:#999"
            detail = html.escape("; ".join(status.missing())) or "reached"
            parts.append(
                f"<div class='f0-level' data-state='{status.state.value}' "
                f"style='display:inline-block;margin:4px;padding:6px 10px;border-radius:14px;"
                f"{style}' title='{detail}'><b>{html.escape(level.id.title())}</b> "
                f"{html.escape(level.title)} · {status.state.value}</div>"
            )
        upcoming = next((s for s in statuses if s.state is LevelState.IN_PROGRESS), None)
        if upcoming is not None:
            items = "".join(f"<li>{html.escape(m)}</li>" for m in upcoming.missing())
            parts.append(
                f"<div>Next, {html.escape(upcoming.level.id.title())}:<ul>{items}</ul></div>"
            )
        return "".join(parts)
