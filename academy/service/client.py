"""The learner's side of the grading service: when the course is configured for a service, a
check sends the notebook there and gets back the same ``SuiteReport`` a local check makes.

Configuration, first found wins:

* environment: ``F0_SERVICE_URL`` (e.g. ``http://grader.example.org:8790``) and
  ``F0_SERVICE_TOKEN`` (the learner's course token), or on JupyterHub the learner's own
  ``JUPYTERHUB_API_TOKEN`` for a service started with ``f0 serve --hub``;
* ``.f0/service.yaml`` in the course folder::

      service:
        url: http://grader.example.org:8790
        token: <your course token>

The hook in ``academy/learner/checking.py`` (``check_notebook``) is one line: grade with
``grade(course, module, nb)`` (this module) instead of ``run_hidden_suite(course, module, nb)``;
``grade`` checks locally when no service is configured (self-paced learners).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from academy.errors import AcademyError
from academy.manifest import Course, Module

__all__ = [
    "ServiceConfig",
    "ServiceError",
    "check_remotely",
    "grade",
    "report_from_json",
    "service_config",
    "service_configured",
]

API = "/api/v1"


class ServiceError(AcademyError):
    """The service refused the check or could not be reached (the message says which)."""


@dataclass(frozen=True)
class ServiceConfig:
    url: str
    token: str


SERVICE_FILE = ".f0/service.yaml"  # in the course folder: the service's url and token


def service_configured(course: Course | None = None) -> bool:
    """Whether checks go to a grading service (without reading or judging its settings)."""
    if os.environ.get("F0_SERVICE_URL"):
        return True
    return course is not None and (course.root / SERVICE_FILE).is_file()


def service_config(course: Course | None = None) -> ServiceConfig | None:
    url = os.environ.get("F0_SERVICE_URL")
    # on JupyterHub the learner's own server token says who they are (f0 serve --hub)
    token = os.environ.get("F0_SERVICE_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
    if url:
        if not token:
            raise ServiceError(
                "F0_SERVICE_URL is set but neither F0_SERVICE_TOKEN nor JUPYTERHUB_API_TOKEN is"
            )
        return ServiceConfig(url.rstrip("/"), token)
    if course is None:
        return None
    path = course.root / SERVICE_FILE
    if not path.is_file():
        return None
    try:
        raw = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("service") or {}
    except (yaml.YAMLError, AttributeError) as exc:
        raise ServiceError(f"{path}: expected a `service:` block with url and token") from exc
    if not isinstance(raw, dict) or not raw.get("url") or not raw.get("token"):
        raise ServiceError(f"{path}: the `service:` block needs `url` and `token`")
    return ServiceConfig(str(raw["url"]).rstrip("/"), str(raw["token"]))


def _request(
    config: ServiceConfig, method: str, path: str, body: Any = None, timeout: float = 30.0
) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        config.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {config.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"{}")
        except ValueError:
            payload = {}
        return exc.code, payload
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceError(f"cannot reach the grading service at {config.url}: {reason}") from exc


def check_remotely(
    course: Course,
    module: Module,
    notebook: Any,
    config: ServiceConfig | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = 900.0,
):
    """Send ``notebook`` (parsed) to the service; wait for and return its ``SuiteReport``."""
    config = config or service_config(course)
    if config is None:
        raise ServiceError("no grading service configured (F0_SERVICE_URL, .f0/service.yaml)")
    status, job = _request(
        config, "POST", f"{API}/checks", {"module": module.id, "notebook": notebook}
    )
    if status != 202:
        raise ServiceError(
            f"the grading service refused the check ({status}): "
            f"{job.get('error', 'no reason given')}"
        )
    deadline = time.monotonic() + timeout
    while job.get("state") in ("queued", "running"):
        if on_progress is not None:
            on_progress(job)
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServiceError(f"the grading service did not finish the check in {timeout:g} s")
        wait = max(0.1, min(10.0, left))  # the service answers at the next state change
        status, job = _request(
            config, "GET", f"{API}/checks/{job['id']}?wait={wait:.1f}", timeout=wait + 30
        )
        if status != 200:
            raise ServiceError(f"the grading service answered {status}: {job.get('error')}")
    if job.get("state") != "done" or "report" not in job:
        raise ServiceError(f"the check failed on the service: {job.get('error', 'unknown')}")
    return report_from_json(course, module, job["report"])


def report_from_json(course: Course, module: Module, data: dict[str, Any]):
    """A ``SuiteReport`` from ``SuiteReport.to_json()``, against this course's manifest."""
    from academy.grading.suite_runner import CaseResult, ExerciseResult, SuiteReport

    if data.get("module") != module.id:
        raise ServiceError(f"the service graded {data.get('module')!r}, not {module.id}")
    results = {}
    for key, raw in data["exercises"].items():
        try:
            exercise = module.exercise(key)
        except AcademyError as exc:
            raise ServiceError(
                f"the service's course differs from yours ({exc}): update your course folder"
            ) from exc
        fields = CaseResult.__dataclass_fields__
        cases = [CaseResult(**{k: v for k, v in c.items() if k in fields}) for c in raw["cases"]]
        results[key] = ExerciseResult(exercise, cases, list(raw.get("problems", [])))
    return SuiteReport(
        module,
        results,
        load_problems=list(data.get("load_problems", [])),
        sandboxed=bool(data.get("sandboxed")),
    )


def grade(course: Course, module: Module, notebook: Any):
    """The check's grading step: on the service when one is configured, else locally."""
    config = service_config(course)
    if config is not None:
        return check_remotely(course, module, notebook, config)
    from academy.grading.suite_runner import run_hidden_suite

    return run_hidden_suite(course, module, notebook)
