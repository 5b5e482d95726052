"""Scriptlets: the small classes a recipe step names in ``module`` and ``function``."""

from framework0.scriptlets.base import BaseScriptlet

__all__ = ["BaseScriptlet"]
