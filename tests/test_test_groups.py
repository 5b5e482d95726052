"""The test suite's own grouping: tests marked ``xdist_group`` share one worker.

``make test`` runs ``pytest -n 2 --dist loadgroup``. The slow fixtures (a graded course, a
running hub) are module-scoped and their tests are grouped so that each fixture is built
once. If a pytest or pytest-xdist release breaks grouping (pytest 9.2 with xdist 3.8 did),
every such fixture is built once per worker and CI time doubles without any test failing,
so this test fails instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

MODULE = """
import os, pytest
pytestmark = pytest.mark.xdist_group("one")

@pytest.fixture(scope="module")
def built():
    with open(os.environ["SETUP_LOG"], "a") as fh:
        fh.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")

@pytest.mark.parametrize("n", range(12))
def test_grouped(built, n):
    pass
"""

OTHERS = """
import time, pytest

@pytest.mark.parametrize("n", range(12))
def test_free(n):
    time.sleep(0.05)
"""


def test_a_group_and_its_module_fixture_stay_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(MODULE)
    (tmp_path / "test_free.py").write_text(OTHERS)
    log = tmp_path / "setups.log"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "SETUP_LOG": str(log)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    setups = log.read_text().split()
    assert len(setups) == 1, f"the grouped module fixture was built on {setups}"
