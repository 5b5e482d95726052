"""The grading service and Dask grading, measured against direct grading in the same run.

1. Checks: N module-1 checks graded directly with ``run_hidden_suite`` one after the other,
   then the same N sent at once to ``f0 serve`` (a LocalCluster of --workers) by N learners:
   the throughput ratio (service over direct). Then --learners learners each sending --rounds
   checks at once (bounded), with every answer collected: p50 and p95 latency, next to one
   learner alone.
2. With --autograde M: ``f0 autograde`` of M submissions on a real ``dask scheduler`` with
   --workers ``dask worker`` processes, against ``f0 autograde --workers W`` (local process
   pool; run before and after the two Dask runs, so that drift in what the machine delivers
   weighs on both alike) and sequential ``nbgrader autograde`` (the baseline: the course's
   pipeline with none of its speed work, ``benchmarks/stock.py``; and the course's pipeline
   as configured), with the same grades, and how many cores of work the machine delivered
   meanwhile.

    python benchmarks/bench_service.py [--checks 6] [--learners 20] [--rounds 3]
                                       [--workers 2] [--autograde 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from course_tools import course, submission  # noqa: E402
from stock import STOCK_PIPELINE, machine_capacity  # noqa: E402

from academy.build import copy_course, tool_env  # noqa: E402

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, method: str, path: str, token: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def one_check(url: str, token: str, nb: dict, deadline: float) -> tuple[float, float]:
    """Latency of one check (submit to report) and its score."""
    start = time.perf_counter()
    status, job = call(url, "POST", "/api/v1/checks", token, {"module": "module1", "notebook": nb})
    if status != 202:
        raise RuntimeError(f"check refused: {status} {job}")
    while job["state"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError("a check did not finish before the deadline")
        status, job = call(url, "GET", f"/api/v1/checks/{job['id']}?wait=20", token)
    if job["state"] != "done":
        raise RuntimeError(f"check failed: {job}")
    return time.perf_counter() - start, job["report"]["score"], job["seconds"]


def start_service(folder: Path, learners: int, workers: int, rate: int) -> tuple:
    tokens = {f"l{i:02d}": f"token-{i:02d}-" + "x" * 16 for i in range(learners)}
    (folder / "tokens.txt").write_text("".join(f"{k} {v}\n" for k, v in tokens.items()))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "academy.cli",
            "serve",
            "--tokens",
            str(folder / "tokens.txt"),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--rate",
            str(rate),
            "--max-waiting",
            str(rate),
            "--course",
            str(ROOT),
        ],
        cwd=folder,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=2):
                return proc, url, list(tokens.values())
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("f0 serve did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_checks(args) -> None:
    from academy.grading.suite_runner import run_hidden_suite

    c = course()
    module = c.module("module1")
    nb = submission(c, module)
    nb_json = json.loads(nbformat.writes(nb))

    start = time.perf_counter()
    for _ in range(args.checks):
        assert run_hidden_suite(c, module, nb).score == 16
    direct = time.perf_counter() - start

    learners = max(args.learners, args.checks)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, tokens = start_service(Path(tmp), learners, args.workers, rate=60)
        try:
            deadline = time.monotonic() + 900
            one_check(url, tokens[0], nb_json, deadline)  # warm: workers import, bundle sent
            start = time.perf_counter()
            with ThreadPoolExecutor(args.checks) as pool:
                out = list(
                    pool.map(lambda t: one_check(url, t, nb_json, deadline), tokens[: args.checks])
                )
            service = time.perf_counter() - start
            assert all(score == 16 for _, score, _ in out)

            alone = [one_check(url, tokens[0], nb_json, deadline)[0] for _ in range(args.rounds)]

            def learner(token: str) -> list[float]:
                return [one_check(url, token, nb_json, deadline) for _ in range(args.rounds)]

            start = time.perf_counter()
            with ThreadPoolExecutor(args.learners) as pool:
                answers = [x for xs in pool.map(learner, tokens[: args.learners]) for x in xs]
            crowd = [latency for latency, _, _ in answers]
            graded = [seconds for _, _, seconds in answers]
            crowd_wall = time.perf_counter() - start
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    print(f"checks: {args.checks} module-1 checks, {args.workers} Dask workers")
    print(
        f"  direct run_hidden_suite, sequential: {direct:.2f} s "
        f"({direct / args.checks:.2f} s/check)"
    )
    print(
        f"  via f0 serve, {args.checks} at once:      {service:.2f} s "
        f"({service / args.checks:.2f} s/check)"
    )
    print(f"  throughput ratio service/direct:     {direct / service:.2f}x")
    print(
        f"crowd: {args.learners} learners x {args.rounds} checks, all answered: "
        f"{len(crowd)}/{args.learners * args.rounds} in {crowd_wall:.1f} s"
    )
    print(f"  one learner alone: p50 {statistics.median(alone):.2f} s")
    print(f"  crowd:             p50 {pct(crowd, 0.5):.2f} s, p95 {pct(crowd, 0.95):.2f} s")
    print(
        f"  grading time per check on a worker, in the crowd: mean {statistics.mean(graded):.2f} s"
    )


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        command, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=3600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def scores(root: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.find_assignment("module1").submissions}


def bench_autograde(args) -> None:
    c = course()
    module = c.module("module1")
    variants = [(), ("ex_1_5_solution",), ("ex_1_3_solution", "ex_1_4_solution")]
    f0 = [sys.executable, "-m", "academy.cli", "autograde", "module1"]
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for name in ("sequential", "overlap", "local", "dask", "dask2", "local2"):
            Path(tmp, name).mkdir()
            root = copy_course(c, Path(tmp, name))
            timed(["nbgrader", "generate_assignment", "module1", "--force"], root)
            for i in range(args.autograde):
                folder = root / "submitted" / f"s{i:02d}" / "module1"
                folder.mkdir(parents=True)
                nbformat.write(
                    submission(c, module, unsolved=variants[i % 3]), folder / module.notebook
                )
            roots[name] = root
        far = Path(tmp, "cluster")
        far.mkdir()
        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        procs = [
            subprocess.Popen(
                [
                    str(BIN / "dask"),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                ],
                cwd=far,
                env=tool_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        ]
        try:
            for i in range(args.workers):
                home = far / f"w{i}"
                home.mkdir()
                procs.append(
                    subprocess.Popen(
                        [
                            str(BIN / "dask"),
                            "worker",
                            address,
                            "--nthreads",
                            "1",
                            "--no-dashboard",
                            "--host",
                            "127.0.0.1",
                            "--local-directory",
                            str(home),
                        ],
                        cwd=home,
                        env=tool_env({"HOME": str(home)}),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            from distributed import Client

            with Client(address, timeout="60s") as client:
                client.wait_for_workers(args.workers, timeout=120)
            capacity = [machine_capacity(args.workers)]
            sequential = timed(
                ["nbgrader", "autograde", "module1", *STOCK_PIPELINE], roots["sequential"]
            )
            overlap = timed(["nbgrader", "autograde", "module1"], roots["overlap"])
            # local, dask, dask, local: a machine that speeds up or slows down during the
            # runs (this one does) weighs on both the same
            locals_ = [timed([*f0, "--workers", str(args.workers)], roots["local"])]
            dasks = [timed([*f0, "--scheduler", address], roots["dask"])]
            dasks.append(timed([*f0, "--scheduler", address], roots["dask2"]))
            locals_.append(timed([*f0, "--workers", str(args.workers)], roots["local2"]))
            local, dask = statistics.mean(locals_), statistics.mean(dasks)
            capacity.append(machine_capacity(args.workers))
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        same = len({str(scores(root)) for root in roots.values()}) == 1
    n = args.autograde
    print(f"autograde: {n} module-1 submissions, {args.workers} workers, same grades: {same}")
    print(
        f"  sequential nbgrader autograde, no speed work (baseline): "
        f"{sequential:.1f} s ({sequential / n:.2f} s each)"
    )
    print(
        f"  sequential nbgrader autograde, the course's pipeline: {overlap:.1f} s "
        f"({overlap / n:.2f} s each, {sequential / overlap:.2f}x)"
    )
    print(
        f"  f0 autograde --workers {args.workers} (local):  {local:.1f} s ({local / n:.2f} s each;"
        f" mean of {locals_[0]:.1f} s first and {locals_[1]:.1f} s last)"
    )
    print(
        f"  f0 autograde --scheduler ({args.workers} dask worker processes): {dask:.1f} s "
        f"({dask / n:.2f} s each; mean of {dasks[0]:.1f} s and {dasks[1]:.1f} s, in between)"
    )
    print(
        f"  dask vs local: {dask / local:.2f}x the time; dask vs sequential: "
        f"{sequential / dask:.2f}x faster; local vs sequential: {sequential / local:.2f}x"
    )
    print(
        f"  cores of work the machine delivered to {args.workers} processes: "
        f"{capacity[0]:.2f} before, {capacity[1]:.2f} after"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=6)
    parser.add_argument("--learners", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--autograde", type=int, default=0, help="submissions (0: skip)")
    args = parser.parse_args()
    if args.checks:
        bench_checks(args)
    if args.autograde:
        bench_autograde(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
