"""JupyterHub configuration of the course (``python -m academy.hub`` passes it with ``-f``).

It reads ``$F0_HUB_SETTINGS`` (``state/secret/settings.json``, written by
:func:`academy.hub.deploy.prepare`). Groups and roles follow nbgrader's JupyterHub guide
(``docs/source/configuration/jupyterhub_config.rst`` and its multiple-classes demo):
``formgrade-framework0-academy`` may use the course service (the formgrader, run as the
instructor's account), ``nbgrader-framework0-academy`` may discover it. See docs/hub.md.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

from academy.hub import (
    COURSE_ID,
    FORMGRADE_GROUP,
    GRADING_SERVICE,
    INSTRUCTORS_GROUP,
    STUDENT_GROUP,
)
from academy.hub.deploy import HubSettings, groups

if TYPE_CHECKING:  # JupyterHub's config loader puts get_config() in this file's namespace
    from traitlets.config import Config

    def get_config() -> Config: ...


c = get_config()
settings = HubSettings.load(Path(os.environ["F0_HUB_SETTINGS"]))
secret = settings.secret_dir
venv_bin = settings.python_bin
path = f"{venv_bin}:/usr/local/bin:/usr/bin:/bin"

# --- network: everything on loopback ------------------------------------------------------
c.JupyterHub.ip = settings.ip
c.JupyterHub.port = settings.port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings.hub_port
c.ConfigurableHTTPProxy.command = [settings.proxy]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
c.ConfigurableHTTPProxy.should_start = True

# --- state -----------------------------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{secret / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(secret / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(secret / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every server it started
c.JupyterHub.cleanup_proxy = True

# --- people ----------------------------------------------------------------------------
people = settings.persons()
instructors = [p.username for p in settings.instructors()]
c.Authenticator.allowed_users = {p.username for p in people}
c.Authenticator.admin_users = set()  # instructors get scoped roles, not full admin
# Trial only: one shared password for everyone (docs/hub.md shows LTI 1.3 and OAuth).
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = settings.password

c.JupyterHub.load_groups = {name: {"users": users} for name, users in groups(settings).items()}
c.JupyterHub.load_roles = [
    {
        "name": "instructor",
        "groups": [INSTRUCTORS_GROUP],
        "scopes": ["admin-ui", "list:users", "read:users", "admin:servers", "read:groups"],
    },
    {  # the formgrader: the course service, run as the instructor's account
        "name": FORMGRADE_GROUP,
        "groups": [FORMGRADE_GROUP],
        "scopes": [
            f"access:services!service={COURSE_ID}",
            "list:services",
            f"read:services!service={COURSE_ID}",
        ],
    },
    {  # learners: discover the course (nbgrader's course list); nothing else of anyone's
        "name": STUDENT_GROUP,
        "groups": [STUDENT_GROUP],
        "scopes": ["list:services", f"read:services!service={COURSE_ID}"],
    },
]

# --- servers: one local account each --------------------------------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [f"{venv_bin}/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {"PATH": path}


def pre_spawn_hook(spawner):
    """Learners: their home and the learner configuration; instructors: the course root."""
    name = spawner.user.name
    role = "instructor" if name in instructors else "learner"
    spawner.environment["JUPYTER_CONFIG_PATH"] = str(settings.config_dir(role))
    spawner.environment["JUPYTERHUB_SINGLEUSER_APP"] = "jupyter_server.serverapp.ServerApp"
    if role == "instructor":
        spawner.notebook_dir = str(settings.course_root(settings.instructors()[0]))
    else:
        spawner.notebook_dir = "~"
        # grade cells and `f0 check` send the notebook to the course's grading service, with
        # the learner's own JUPYTERHUB_API_TOKEN; the hidden suites never reach the learner
        spawner.environment["F0_SERVICE_URL"] = grading_url


grading_url = f"http://127.0.0.1:{settings.grading_port}"
c.Spawner.pre_spawn_hook = pre_spawn_hook

# --- the course service: the formgrader, as the instructor -----------------------------
c.JupyterHub.services = [
    {
        "name": COURSE_ID,
        "display": True,
        "url": f"http://127.0.0.1:{settings.service_port}",
        "command": [f"{venv_bin}/jupyterhub-singleuser", "--ServerApp.default_url=/formgrader"],
        "user": instructors[0],
        "cwd": str(settings.course_root()),
        "oauth_no_confirm": True,
        "environment": {
            "PATH": path,
            "JUPYTERHUB_DEFAULT_URL": "/formgrader",
            "JUPYTER_CONFIG_PATH": str(settings.config_dir("instructor")),
        },
    },
    {  # the grading service: learners' checks on the hidden suites, as the instructor
        "name": GRADING_SERVICE,
        "display": False,
        "url": grading_url,
        "command": [
            f"{venv_bin}/f0",
            "serve",
            "--hub",  # reads JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN, set by the hub
            *("--host", "127.0.0.1", "--port", str(settings.grading_port)),
            *("--course", str(settings.course_root()), "--workers", "1"),
        ],
        "user": instructors[0],
        "cwd": str(settings.course_root()),
        "environment": {
            "PATH": path,
            "JUPYTER_CONFIG_PATH": str(settings.config_dir("instructor")),
        },
    },
]
