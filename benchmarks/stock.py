"""What the grading benchmarks measure against, and how they count CPU.

The baseline is sequential ``nbgrader autograde`` with the course's pipeline (the sandboxed
kernel and the hidden suite: the same grades) and none of its speed work: each hidden suite
after the kernel, in a new interpreter; nbgrader's own cell-metadata check; the kernel with
ipykernel's debugger. Each switch is a documented setting of the step it belongs to.
"""

from __future__ import annotations

import os

STOCK_PIPELINE = (
    "--StartHiddenSuites.enabled=False",  # the suite after the kernel, not alongside
    "--ScoreHiddenSuites.preload=False",  # a new interpreter per suite, no fork server
    "--CheckCellMetadataCompiled.compile_schema=False",  # nbgrader's check on every cell
    "--ExecuteWithinLimits.kernel_debugger=True",  # ipykernel imports debugpy
    "--ExecuteWithinLimits.trim_kernel_waits=False",  # jupyter_client's idle waits
)


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, /proc/stat).

    Sandboxed processes are reaped inside their sandbox, so a parent's RUSAGE_CHILDREN misses
    them; the machine-wide count does not, and is right when nothing else runs.
    """
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


_SPIN = "x = 0\nfor i in range(12_000_000):\n    x += i * i\n"


def machine_capacity(processes: int = 2, rounds: int = 2) -> float:
    """How many cores of work this machine delivers to ``processes`` CPU-bound processes.

    The same pure-Python loop runs alone, then ``processes`` copies at once; the capacity is
    ``processes`` times the time alone over the time together (best of ``rounds`` each).
    On a machine with ``processes`` free cores it is close to ``processes``. Virtual cores
    that share a physical core, or a busy host, give less: no grading can run faster in
    parallel than this allows.
    """
    import subprocess
    import sys
    import time

    def run(count: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(count)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    alone = min(run(1) for _ in range(rounds))
    together = min(run(processes) for _ in range(rounds))
    return processes * alone / together
