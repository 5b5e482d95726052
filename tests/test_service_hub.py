"""f0 serve --hub: learners authenticate with their own JupyterHub API token.

A real JupyterHub (with its configurable-http-proxy from npm, as `make hub` installs it) runs
on 127.0.0.1 with two learners; ``f0 serve --hub`` runs beside it with a service token, as the
hub would start it. Each learner's token names that learner, a check sent with it is theirs
alone, and tokens the hub does not know, or that name a service, are refused with 401.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from course_tools import ROOT, course, submission

from academy.build import tool_env
from academy.hub.deploy import PROXY_BIN, free_port

pytestmark = pytest.mark.xdist_group("service")

COURSE = course()
MODULE = COURSE.module("module1")
HUB_CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"ada", "alan"}}
c.JupyterHub.db_url = "sqlite:///{folder}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{folder}/cookie_secret"
c.JupyterHub.pid_file = "{folder}/hub.pid"
c.JupyterHub.services = [
    {{"name": "f0-grading", "api_token": {service_token!r}}},
    {{"name": "setup", "api_token": {setup_token!r}}},
]
c.JupyterHub.load_roles = [
    {{"name": "setup", "scopes": ["admin:users", "tokens"], "services": ["setup"]}},
]
"""


def request(url, method="GET", body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def started(proc, log: Path, probe, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what} ended:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what} did not answer in {seconds} s")


def stop(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def hub_and_service(tmp_path_factory):
    assert PROXY_BIN.exists(), f"{PROXY_BIN} is missing: make hub-proxy (make test does)"
    folder = tmp_path_factory.mktemp("service-hub")
    port, hub_port, proxy_api = free_port(), free_port(), free_port()
    service_token, setup_token = secrets.token_hex(16), secrets.token_hex(16)
    (folder / "jupyterhub_config.py").write_text(
        HUB_CONFIG.format(
            port=port,
            hub_port=hub_port,
            proxy_api=proxy_api,
            proxy=str(PROXY_BIN),
            folder=folder,
            service_token=service_token,
            setup_token=setup_token,
        )
    )
    bin_dir = Path(sys.executable).parent
    hub = subprocess.Popen(
        [str(bin_dir / "jupyterhub"), "-f", str(folder / "jupyterhub_config.py")],
        cwd=folder,
        env=tool_env({"HOME": str(folder)}),
        stdout=open(folder / "hub.log", "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{hub_port}/hub/api"
    serve = None
    try:
        started(hub, folder / "hub.log", lambda: request(api)[0] == 200, "JupyterHub")
        tokens = {}
        for name in ("ada", "alan"):
            status, _ = request(f"{api}/users/{name}", "POST", {}, setup_token)
            assert status in (201, 409)
            status, made = request(f"{api}/users/{name}/tokens", "POST", {}, setup_token)
            assert status == 201, made
            tokens[name] = made["token"]
        serve_port = free_port()
        serve = subprocess.Popen(
            [
                *(sys.executable, "-m", "academy.cli", "serve", "--hub"),
                *("--port", str(serve_port), "--workers", "1", "--course", str(ROOT)),
            ],
            cwd=folder,
            env=tool_env(
                {
                    "HOME": str(folder),
                    "JUPYTERHUB_API_URL": api,
                    "JUPYTERHUB_API_TOKEN": service_token,
                }
            ),
            stdout=open(folder / "serve.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{serve_port}"
        started(
            serve,
            folder / "serve.log",
            lambda: request(f"{url}/api/v1/health")[0] == 200,
            "f0 serve --hub",
        )
        yield url, tokens, service_token
    finally:
        for proc in (serve, hub):
            if proc is not None:
                stop(proc)


def honest():
    return json.loads(nbformat.writes(submission(COURSE, MODULE)))


def test_a_learners_hub_token_names_them_and_their_check_is_theirs(hub_and_service):
    url, tokens, _ = hub_and_service
    status, job = request(
        f"{url}/api/v1/checks", "POST", {"module": MODULE.id, "notebook": honest()}, tokens["ada"]
    )
    assert status == 202, job
    deadline = time.monotonic() + 600
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        status, job = request(f"{url}/api/v1/checks/{job['id']}?wait=10", token=tokens["ada"])
        assert status == 200, job
    assert job["state"] == "done" and job["report"]["score"] == MODULE.points, job
    status, _ = request(f"{url}/api/v1/checks/{job['id']}", token=tokens["alan"])
    assert status == 404  # another learner cannot read it


@pytest.mark.parametrize("who", ["unknown", "service"])
def test_tokens_that_name_no_learner_are_refused(hub_and_service, who):
    url, _, service_token = hub_and_service
    token = service_token if who == "service" else secrets.token_hex(16)
    status, body = request(
        f"{url}/api/v1/checks", "POST", {"module": MODULE.id, "notebook": honest()}, token
    )
    assert status == 401 and "token" in body["error"], body


def test_serve_hub_without_the_hubs_environment_is_one_line_and_exit_2(tmp_path):
    env = tool_env({"HOME": str(tmp_path)})
    env.pop("JUPYTERHUB_API_URL", None)
    env.pop("JUPYTERHUB_API_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "academy.cli", "serve", "--hub", "--course", str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "JUPYTERHUB_API_URL" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_the_learner_client_sends_the_hub_token_when_no_course_token_is_set(monkeypatch):
    from academy.service.client import service_config

    monkeypatch.setenv("F0_SERVICE_URL", "http://127.0.0.1:9/")
    monkeypatch.delenv("F0_SERVICE_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token-of-ada")
    assert service_config().token == "hub-token-of-ada"
    monkeypatch.setenv("F0_SERVICE_TOKEN", "course-token")
    assert service_config().token == "course-token"
