"""What every ``f0`` command shares: the console it prints on."""

from __future__ import annotations

from rich.console import Console

__all__ = ["console"]

# soft_wrap: paths and messages stay on one line, whatever the width (pipes, CI logs)
console = Console(stderr=False, highlight=False, emoji=False, soft_wrap=True)  # did:key: no emoji
