"""``f0 serve``: the course grading service. It holds the course folder with its hidden suites;
learners send a notebook and get the same report ``f0 check`` gives (scores, messages, load
problems and flags; never test code), without the suites ever reaching their machines.

HTTP API (JSON in, JSON out; every error is one 4xx/5xx JSON object ``{"error": "..."}``)::

    POST /api/v1/checks        {"module": "module1", "notebook": {...}}   -> 202 job
    GET  /api/v1/checks/<id>   the job: state, queue position, progress; the report when done
    GET  /api/v1/health        no token needed: queue length, running checks, workers

Every request but ``health`` carries ``Authorization: Bearer <token>``; a token names one
learner (``--tokens FILE``: one ``learner token`` pair a line). Each learner may send
``rate`` checks a minute (429 with ``Retry-After`` beyond), and have ``max_waiting`` checks
waiting. Checks wait in a fair queue (least-recently-served learner first) and at most as many
run as the Dask cluster has threads, so the queue, not Dask, decides who goes next.
Grading runs on Dask: an embedded ``LocalCluster`` by default, or ``--scheduler ADDRESS``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tornado import web
from tornado.httpserver import HTTPServer

from academy import manifest
from academy.errors import AcademyError
from academy.service.bundle import course_bundle, digest
from academy.service.queue import FairQueue, RateLimiter
from academy.service.tasks import bundle_value, local_cluster_options

if TYPE_CHECKING:  # distributed is imported when the service starts, not with this module
    from distributed import Client, LocalCluster

__all__ = ["CourseTokens", "GradingService", "HubTokens", "Job", "load_tokens", "make_app", "serve"]

log = logging.getLogger("academy.service")

API = "/api/v1"
MAX_BODY = 8 * 1024 * 1024  # a course notebook is well under 1 MiB
KEEP_SECONDS = 3600.0  # finished jobs stay readable this long


@dataclass(eq=False)
class Job:
    id: str
    learner: str
    module: str
    notebook: dict[str, Any]
    submitted: float = field(default_factory=time.monotonic)
    state: str = "queued"  # queued, running, done, error
    started: float | None = None
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str = ""
    finished_seq: int = 0  # 1 for the first check the service finished, 2 for the next...
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set on each state change

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


def load_tokens(path: Path) -> dict[str, str]:
    """``learner token`` pairs, one a line (``#`` comments); returns token -> learner."""
    tokens: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) < 16:
            raise AcademyError(
                f"{path}:{number}: expected `learner token` (a token of 16+ characters)"
            )
        tokens[parts[1]] = parts[0]
    if not tokens:
        raise AcademyError(f"{path}: no `learner token` lines")
    return tokens


class CourseTokens:
    """Standalone: the course's own tokens (``--tokens FILE``), each naming one learner."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = dict(tokens)

    async def learner(self, token: str) -> str | None:
        given, found = token.encode(), None
        for known, learner in self.tokens.items():  # compare with every token: constant time
            if hmac.compare_digest(known.encode(), given):
                found = learner
        return found


class HubTokens:
    """On JupyterHub: a learner sends their own hub API token (``JUPYTERHUB_API_TOKEN``, which
    every single-user server has) and the hub says whose it is (JupyterHub's ``HubAuth``,
    answers cached for ``cache_seconds``). Service and server tokens name no learner."""

    def __init__(self, api_url: str, api_token: str, cache_seconds: int = 60) -> None:
        from jupyterhub.services.auth import HubAuth

        self.auth = HubAuth(api_url=api_url, api_token=api_token, cache_max_age=cache_seconds)

    async def learner(self, token: str) -> str | None:
        model = await self.auth.user_for_token(token, sync=False)
        if not model or model.get("kind", "user") != "user":
            return None
        return str(model["name"])


class GradingService:
    """The queue, the limits and the Dask client behind the HTTP handlers.

    ``tokens``: the course's ``learner token`` pairs, or an authenticator such as
    ``HubTokens`` (anything with ``async learner(token) -> name | None``).
    """

    def __init__(
        self,
        course: manifest.Course,
        tokens: dict[str, str] | CourseTokens | HubTokens,
        scheduler: str | None = None,
        workers: int = 2,
        rate: int = 10,
        max_waiting: int = 10,
        limits: dict[str, Any] | None = None,
        suite_timeout: float | None = None,
    ) -> None:
        if limits is None or suite_timeout is None:
            # the course's ScoreHiddenSuites settings: checks score as the instructor grades
            from dataclasses import asdict

            from academy.grading.steps import configured_limits

            configured, timeout = configured_limits(course.root)
            limits = asdict(configured) if limits is None else limits
            suite_timeout = timeout if suite_timeout is None else suite_timeout
        self.course = course
        self.auth = CourseTokens(tokens) if isinstance(tokens, dict) else tokens
        self.scheduler = scheduler
        self.workers = workers
        self.rate = RateLimiter(rate)
        self.max_waiting = max_waiting
        self.limits = limits
        self.suite_timeout = suite_timeout
        self.queue: FairQueue[Job] = FairQueue()
        self.jobs: dict[str, Job] = {}
        self.running: set[Job] = set()
        self.durations: list[float] = []
        self.finished_count = 0
        self.client: Client | None = None  # set by start(): the service's Dask client
        self.cluster: LocalCluster | None = None  # the embedded cluster, without --scheduler
        self._bundles: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._nthreads = 0
        self._asked = 0.0
        self._dispatcher: asyncio.Task | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        from distributed import Client, LocalCluster

        if self.scheduler:
            client = await Client(self.scheduler, asynchronous=True, timeout="30s")
        else:
            self._scratch = tempfile.TemporaryDirectory(prefix="f0-dask-")
            options = local_cluster_options(self.workers, self._scratch.name)
            self.cluster = await LocalCluster(**options, asynchronous=True)
            client = await Client(self.cluster, asynchronous=True)
        self.client = client
        if not self.scheduler:
            await client.wait_for_workers(max(1, self.workers), timeout=120)
        self._asked = -10.0
        await self._refresh()
        self._dispatcher = asyncio.ensure_future(self._dispatch())

    async def stop(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        if self.client is not None:
            await self.client.close()
        if self.cluster is not None:
            closing = self.cluster.close()  # an awaitable: the cluster is asynchronous
            if closing is not None:
                await closing
        if self._scratch is not None:
            self._scratch.cleanup()

    # --- requests -----------------------------------------------------------------------------

    async def learner(self, header: str | None) -> str | None:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            return None
        return await self.auth.learner(token.strip())

    def submit(self, learner: str, module: str, notebook: dict[str, Any]) -> Job:
        job = Job(uuid.uuid4().hex, learner, module, notebook)
        self.jobs[job.id] = job
        self.queue.push(learner, job)
        self._wake.set()
        self._prune()
        return job

    def describe(self, job: Job) -> dict[str, Any]:
        now = time.monotonic()
        data: dict[str, Any] = {"id": job.id, "module": job.module, "state": job.state}
        if job.state == "queued":
            position = self.queue.position(job)
            data["position"] = position
            data["queued_seconds"] = round(now - job.submitted, 3)
            data["eta_seconds"] = round(self._eta(position or 1), 1)
        elif job.state == "running":
            data["position"] = 0
            data["running_seconds"] = round(now - (job.started or now), 3)
            typical = self._typical()
            data["progress"] = round(min(0.95, (now - (job.started or now)) / typical), 2)
        else:
            data["position"] = 0
            data["progress"] = 1.0
            data["seconds"] = round((job.finished or now) - (job.started or job.submitted), 3)
            data["finished_seq"] = job.finished_seq
            if job.report is not None:
                data["report"] = job.report
            if job.error:
                data["error"] = job.error
        return data

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "course": self.course.course_id,
            "modules": [m.id for m in self.course.modules],
            "queued": len(self.queue),
            "running": len(self.running),
            "slots": self._slots(),
        }

    # --- the dispatcher -----------------------------------------------------------------------

    def _typical(self) -> float:
        recent = self.durations[-20:]
        return sum(recent) / len(recent) if recent else 5.0

    def _eta(self, position: int) -> float:
        slots = max(1, self._slots())
        return self._typical() * (1 + (position - 1) // slots)

    def _started(self) -> Client:
        """The Dask client; there from start() on (nothing is dispatched before)."""
        if self.client is None:
            raise RuntimeError("the grading service is not started")
        return self.client

    def _slots(self) -> int:
        """Checks that may run at once: the cluster's threads, as last asked (``_refresh``)."""
        return max(1, self._nthreads) if self.client is not None else 0

    async def _refresh(self) -> None:
        """Ask the scheduler for its workers' threads (workers come and go; the client's
        cached view of them is not kept up to date)."""
        now = time.monotonic()
        if now - self._asked < 2.0:
            return
        self._asked = now
        try:
            self._nthreads = sum((await self._started().nthreads()).values())
        except Exception:  # noqa: BLE001 - the scheduler is busy or away: keep the last count
            pass

    async def _bundle(self, module_id: str) -> Any:
        if module_id not in self._bundles:
            module = self.course.module(module_id)
            files = course_bundle(self.course, module)
            self._bundles[module_id] = self._started().submit(  # recomputed if its workers die
                bundle_value, files, key=f"f0-bundle-{digest(files)}", pure=False
            )
        return self._bundles[module_id]

    async def _dispatch(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._refresh()
            while len(self.running) < self._slots() and len(self.queue):
                job = self.queue.pop()
                if job is None:
                    break
                job.state, job.started = "running", time.monotonic()
                job.touch()
                self.running.add(job)
                asyncio.ensure_future(self._run(job))

    async def _run(self, job: Job) -> None:
        from academy.service.tasks import check_notebook_task

        try:
            bundle = await self._bundle(job.module)
            future = self._started().submit(
                check_notebook_task,
                bundle,
                job.module,
                job.notebook,
                self.limits,
                self.suite_timeout,
                pure=False,
                retries=2,
                key=f"f0-check-{job.id}",
            )
            job.report = await future
            job.state = "done"
            self.durations.append(time.monotonic() - (job.started or time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - one check fails alone, with its reason
            log.exception("check %s failed", job.id)
            job.state, job.error = "error", f"the grader failed: {type(exc).__name__}"
        finally:
            job.finished = time.monotonic()
            self.finished_count += 1
            job.finished_seq = self.finished_count
            job.notebook = {}
            job.touch()
            self.running.discard(job)
            self._wake.set()

    def _prune(self) -> None:
        cutoff = time.monotonic() - KEEP_SECONDS
        for key, job in list(self.jobs.items()):
            if job.finished is not None and job.finished < cutoff:
                del self.jobs[key]


# --- HTTP -------------------------------------------------------------------------------------


class _Handler(web.RequestHandler):
    service: GradingService

    def initialize(self, service: GradingService) -> None:
        self.service = service

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def fail(self, status: int, message: str, **headers: str) -> None:
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.finish(json.dumps({"error": message}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        messages = {404: "no such endpoint", 405: "method not allowed"}
        message = messages.get(status_code, self._reason or "internal error")
        self.finish(json.dumps({"error": message}))

    async def authenticate(self) -> str | None:
        learner = await self.service.learner(self.request.headers.get("Authorization"))
        if learner is None:
            self.fail(
                401,
                "missing or unknown token: send `Authorization: Bearer <your course token>`",
                **{"WWW-Authenticate": 'Bearer realm="f0"'},
            )
        return learner


class ChecksHandler(_Handler):
    async def post(self) -> None:
        learner = await self.authenticate()
        if learner is None:
            return
        wait = self.service.rate.allow(learner)
        if wait:
            self.fail(
                429,
                f"too many checks: at most {self.service.rate.per_minute} a minute; "
                f"try again in {wait:.0f} s",
                **{"Retry-After": str(max(1, round(wait)))},
            )
            return
        if self.service.queue.waiting(learner) >= self.service.max_waiting:
            self.fail(429, f"you already have {self.service.max_waiting} checks waiting")
            return
        if len(self.request.body) > MAX_BODY:
            self.fail(413, f"the notebook is over {MAX_BODY // 2**20} MiB")
            return
        problem, module, notebook = self.parse()
        if problem:
            self.fail(400, problem)
            return
        job = self.service.submit(learner, module, notebook)
        self.set_status(202)
        self.set_header("Location", f"{API}/checks/{job.id}")
        self.finish(json.dumps(self.service.describe(job)))

    def parse(self) -> tuple[str, str, dict[str, Any]]:
        import nbformat

        from academy.learner.checking import check_identity

        try:
            body = json.loads(self.request.body or b"")
        except ValueError as exc:
            return f"the body is not JSON: {exc}", "", {}
        if not isinstance(body, dict):
            return "the body must be a JSON object with `module` and `notebook`", "", {}
        course = self.service.course
        try:
            module = course.module(body.get("module", ""))  # missing: "", no module's id
        except (AcademyError, TypeError):
            known = ", ".join(m.id for m in course.modules)
            return f"unknown module {body.get('module')!r} (modules: {known})", "", {}
        raw = body.get("notebook")
        if not isinstance(raw, dict):
            return "`notebook` must be the notebook's JSON (an object)", "", {}
        try:
            nb = nbformat.reads(json.dumps(raw), as_version=4)
            nbformat.validate(nb)
        except Exception as exc:  # noqa: BLE001 - any reason the notebook is unreadable
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            return f"`notebook` is not a valid notebook: {reason}", "", {}
        try:
            check_identity(course, module, nb, Path(f"the notebook sent for {module.id}"))
        except AcademyError as exc:
            return str(exc), "", {}
        return "", module.id, nb


class CheckHandler(_Handler):
    async def get(self, job_id: str) -> None:
        """``?wait=S`` (at most 30): answer when the check changes state or S seconds pass."""
        learner = await self.authenticate()
        if learner is None:
            return
        job = self.service.jobs.get(job_id)
        if job is None or job.learner != learner:
            self.fail(404, f"no check {job_id} of yours (finished checks are kept an hour)")
            return
        try:
            wait = min(30.0, max(0.0, float(self.get_argument("wait", "0"))))
        except ValueError:
            self.fail(400, "`wait` must be a number of seconds")
            return
        if wait and job.state in ("queued", "running"):
            try:
                await asyncio.wait_for(job.changed.wait(), wait)
            except asyncio.TimeoutError:
                pass
        self.finish(json.dumps(self.service.describe(job)))


class HealthHandler(_Handler):
    def get(self) -> None:
        self.finish(json.dumps(self.service.health()))


class NotFound(_Handler):
    def prepare(self) -> None:
        self.fail(404, f"no such endpoint: {self.request.path} (see {API}/health)")


def make_app(service: GradingService) -> web.Application:
    args = {"service": service}
    return web.Application(
        [
            (rf"{API}/checks", ChecksHandler, args),
            (rf"{API}/checks/([0-9a-f]{{32}})", CheckHandler, args),
            (rf"{API}/health", HealthHandler, args),
        ],
        default_handler_class=NotFound,
        default_handler_args=args,
    )


async def _serve(service: GradingService, host: str, port: int, ready=None) -> None:
    await service.start()
    server = HTTPServer(make_app(service), max_body_size=2 * MAX_BODY, xheaders=False)
    server.listen(port, address=host)
    bound = next(iter(server._sockets.values())).getsockname()[1]
    print(
        f"f0 serve: {service.course.title} on http://{host}:{bound}{API} "
        f"(grading on {service.scheduler or f'a LocalCluster of {service.workers}'})",
        flush=True,
    )
    if ready is not None:
        ready(bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or not Unix
            pass
    try:
        await stop.wait()
    finally:
        server.stop()
        await service.stop()


def serve(service: GradingService, host: str = "127.0.0.1", port: int = 8790, ready=None) -> None:
    try:
        asyncio.run(_serve(service, host, port, ready))
    except KeyboardInterrupt:
        pass
