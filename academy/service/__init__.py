"""Grading off the learner's machine: course bundles that travel with Dask tasks, the course
grading service (``f0 serve``) and its learner-side client.

* ``bundle``: the files a grading task needs (course.yaml, the module's hidden suite, the
  Jupyter/nbgrader configuration, the module's source folder), read once on the instructor's
  side as bytes, so that workers need no shared filesystem with the course.
* ``tasks``: what runs on a Dask worker (one student's ``nbgrader autograde``; one check).
* ``server``: ``f0 serve``, an HTTP service holding the course and its suites.
* ``client``: ``check_remotely``, what a learner's check calls when a service is configured.
"""
