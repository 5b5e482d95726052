"""Grading: a module's hidden suite run against a learner's notebook, for the instructor's
``nbgrader autograde`` and the learner's ``f0 check`` alike.

* ``cases``: what a hidden test is (exercise, points, message on a pytest marker).
* ``notebook``: which cells of a submitted notebook are the learner's code.
* ``suite_runner``: runs a hidden suite in a fresh trusted process; ``plugin`` is the pytest
  plugin it runs under (the ``learner`` fixture, the JSON report); ``forkserver`` forks
  those processes from one that has pytest imported, when many notebooks are graded.
* ``render``: an exercise's result as the outputs of its grade cell, as nbgrader reads them.
* ``steps``: the preprocessors added to nbgrader's pipelines (``jupyter_config.py``);
  ``cellmetadata``: nbgrader's metadata check with its schema compiled once; ``kernel``:
  jupyter_client's kernel manager and client without their idle waits.
* ``sanitize``: the first autograde step, so that one learner's file never stops the class.
* ``nofollow``: touching student folders without following links a learner put there.
* ``parallel``: every submission graded in parallel, one writer to the gradebook.
"""
