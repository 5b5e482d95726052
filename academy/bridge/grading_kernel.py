"""The learner's kernel as grading starts it: ipykernel without its debugger.

ipykernel imports debugpy whenever it creates a kernel, so that a front end can attach a
debugger. Nobody attaches one to a grading kernel, and the import costs about 0.1 s of CPU
per student, a sixth of the kernel's start-up. With debugpy marked missing, ipykernel creates
the kernel as it does where debugpy is not installed: without a debugger. Everything else is
``python -m ipykernel_launcher`` (``academy.bridge.kernel_sandbox`` runs this inside the
sandbox; ``ExecuteWithinLimits.kernel_debugger`` chooses).
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.modules["debugpy"] = None  # type: ignore[assignment]  # ipykernel: no debugger
    if sys.path[0] == "" or Path(sys.path[0]) == Path.cwd():  # as ipykernel_launcher does
        del sys.path[0]

    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
