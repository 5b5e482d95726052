"""Instructors' commands: ``f0 autograde`` and ``serve``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from academy import manifest
from academy.cli.common import console
from academy.errors import UsageError

__all__ = ["add_commands", "cmd_autograde", "cmd_serve"]


def cmd_autograde(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from academy.grading.parallel import grade_in_parallel, submitted_students

    course = manifest.load()
    students = args.student or submitted_students(course.root, args.assignment)
    if not students:
        console.print(f"[red]no submissions in submitted/*/{args.assignment}[/red]")
        return 2
    columns = (
        TextColumn("grading {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(args.assignment, total=len(students))
        scheduler = args.scheduler or os.environ.get("F0_DASK_SCHEDULER") or None
        try:
            if args.dask or scheduler:
                from academy.grading.parallel import grade_on_dask

                results = grade_on_dask(
                    course.root,
                    args.assignment,
                    students,
                    scheduler=scheduler,
                    workers=args.workers,
                    force=args.force,
                    nbgrader_args=tuple(args.nbgrader_args),
                    on_result=lambda _: bar.advance(task),
                )
            else:
                results = grade_in_parallel(
                    course.root,
                    args.assignment,
                    students,
                    args.workers,
                    args.force,
                    tuple(args.nbgrader_args),
                    on_result=lambda _: bar.advance(task),
                )
        except FileNotFoundError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            return 2
    table = Table(title=f"{args.assignment}: {len(results)} submissions")
    for column in ("student", "status", "score", "flagged", "seconds"):
        table.add_column(column)
    for r in sorted(results, key=lambda r: r.student):
        score = "" if r.score is None else f"{r.score:g} / {r.max_score:g}"
        table.add_row(
            r.student,
            r.status,
            score,
            "yes" if r.flagged else "",
            f"{r.seconds:.1f}" if r.seconds else "",
        )
    console.print(table)
    for r in results:
        if r.status == "failed":
            console.print(f"[red]{r.student}: nbgrader could not grade it:[/red]\n{r.error}")
    return 1 if any(r.status == "failed" for r in results) else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from academy.service.server import GradingService, HubTokens, load_tokens, serve

    course = manifest.load(Path(args.course) if args.course else None)
    if args.hub:
        api_url, api_token = (
            os.environ.get(v) for v in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN")
        )
        if not api_url or not api_token:
            raise UsageError(
                "f0 serve --hub: JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN are not set "
                "(JupyterHub sets both for a service it starts; docs/service.md)"
            )
        who: Any = HubTokens(api_url, api_token)
    else:
        who = load_tokens(Path(args.tokens))
    service = GradingService(
        course,
        who,
        scheduler=args.scheduler or os.environ.get("F0_DASK_SCHEDULER") or None,
        workers=args.workers,
        rate=args.rate,
        max_waiting=args.max_waiting,
    )
    serve(service, args.host, args.port)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """autograde, serve."""
    grade = sub.add_parser(
        "autograde",
        help="autograde every submission in parallel (instructors)",
        description="Runs `nbgrader autograde --student=S` for each submission in parallel, "
        "each against a private copy of the gradebook, and saves each student's grades into "
        "gradebook.db as soon as they finish (one writer). Interrupted runs keep finished "
        "grades; running again grades only the rest.",
    )
    grade.add_argument("assignment", help="module id, e.g. module1")
    grade.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel graders (default: the number of cores)",
    )
    grade.add_argument(
        "--dask",
        action="store_true",
        help="grade each student as a Dask task on an embedded LocalCluster of --workers",
    )
    grade.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on this Dask cluster, e.g. tcp://10.0.0.5:8786 (env: F0_DASK_SCHEDULER)",
    )
    grade.add_argument("--student", action="append", help="grade only these students")
    grade.add_argument("--force", action="store_true", help="regrade students already saved")
    grade.add_argument(
        "nbgrader_args",
        nargs="*",
        help="extra nbgrader options, after -- (e.g. -- --ExecuteWithinLimits.timeout=60)",
    )
    grade.set_defaults(func=cmd_autograde)
    srv = sub.add_parser(
        "serve",
        help="the course grading service: learners' checks without the suites (instructors)",
        description="Serves checks over HTTP (see docs/service.md): learners POST a notebook "
        "with their token and get f0 check's report; grading runs on Dask.",
    )
    who = srv.add_mutually_exclusive_group(required=True)
    who.add_argument("--tokens", help="file of `learner token` lines (standalone)")
    who.add_argument(
        "--hub",
        action="store_true",
        help="learners send their JupyterHub API token; run as a hub service "
        "(JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN are read from the environment)",
    )
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8790, help="port (default 8790; 0: any)")
    srv.add_argument("--course", help="course folder (default: the one holding course.yaml)")
    srv.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (default: local)")
    srv.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="LocalCluster size")
    srv.add_argument("--rate", type=int, default=10, help="checks per learner per minute")
    srv.add_argument("--max-waiting", type=int, default=10, help="waiting checks per learner")
    srv.set_defaults(func=cmd_serve)
