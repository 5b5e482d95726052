# Jupyter configuration of the learner lab: `make lab` runs `f0 lab`, which passes this file
# with --config. Everything it sets is in academy/learner/lab.py. traitlets provides
# get_config when it loads this file; imported as a module (a package walk), it does nothing.
from academy.learner.lab import configure

_get_config = globals().get("get_config")
if _get_config is not None:
    configure(_get_config())
