"""The learner's side of the course: their own workspace, the learner JupyterLab, checks.

``workspace``: ``work/``, the learner's own copy of ``exercises/`` (git-ignored; no course
command overwrites it). ``lab``: the JupyterLab that ``make lab`` (``f0 lab``) opens on it.
``incell``: the check that every exercise's grade cell runs (so nbgrader's Validate tells the
truth).
"""
