"""The name notebooks use for the learner's progress dashboard (``academy.learner.dashboard``).

Learners' notebooks are never overwritten by a course command, so the names they import stay:
``from academy.dashboard import ProgressDashboard`` (README) keeps working."""

from academy.learner.dashboard import ProgressDashboard

__all__ = ["ProgressDashboard"]
