"""The name notebooks use for the framework0 widgets (``academy.learner.widgets``).

Learners' notebooks are never overwritten by a course command, so the names they import stay:
module 1's ``from academy.widgets import ContextInspector`` keeps working."""

from academy.learner.widgets import ContextInspector

__all__ = ["ContextInspector"]
