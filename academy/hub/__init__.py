"""The course on JupyterHub: ``make hub`` / ``python -m academy.hub`` (see docs/hub.md).

* :mod:`academy.hub.roster`: the roster CSV (instructors and learners, with names and emails);
* :mod:`academy.hub.accounts`: local Unix accounts and groups, commands run as an account;
* :mod:`academy.hub.deploy`: the hub's state folder, the exchange, the instructor's course
  root and the nbgrader/Jupyter configuration each role gets;
* :mod:`academy.hub.exchange`: ``SafeCollect``, nbgrader's collect without following links;
* ``jupyterhub_config.py``: the JupyterHub configuration, read by ``jupyterhub -f``.
"""

COURSE_ID = "framework0-academy"
FORMGRADE_GROUP = f"formgrade-{COURSE_ID}"  # nbgrader's name for the course's graders
STUDENT_GROUP = f"nbgrader-{COURSE_ID}"  # nbgrader's name for the course's learners
INSTRUCTORS_GROUP = "instructors"
GRADING_SERVICE = "f0-grading"  # f0 serve --hub: learners' checks, the hidden suites stay here
ACCOUNT_PREFIX = "f0-"  # the hub creates and removes local accounts with this prefix only
