"""Framework0 Academy: the course platform (manifest, learner tools, trusted grading, hub,
grading service, certificates).

Importing any part of it skips jsonschema's optional ``rfc3987_syntax`` format checker:
jsonschema imports it with its format module and it builds a Lark grammar on import, which
costs about 2.8 s of CPU per process on this machine. Nothing in the course validates IRI
formats, and every academy process pays the cost otherwise: each ``f0`` command, each
nbgrader batch (``academy.grading.parallel._NBGRADER`` imports academy first), each hidden
suite worker and each learner kernel whose grade cells call ``check_exercise``. Processes that
never import academy (stock nbgrader commands, Jupyter servers) get the same skip from the
environment's ``.pth`` hook (``academy.env.install_site_hook``, run by ``make env``).
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
