"""Everything the hub needs before JupyterHub starts, made idempotently (as root).

Layout of the state folder (default ``/var/lib/framework0-academy-hub``)::

    state/                      0755 root
      exchange/                 1777 the nbgrader exchange (unless --exchange elsewhere)
      etc/learner/              JUPYTER_CONFIG_PATH of learners: course id, exchange,
                                no formgrader / create-assignment / course list, the
                                course's certificate key and its public course.yaml
                                (framework0-academy/)
      etc/instructor/           JUPYTER_CONFIG_PATH of instructors: exchange, SafeCollect,
                                the late-submission penalty
      secret/                   0700 root: settings.json, the hub database, cookie secret

Each person gets a local account (prefix ``f0-``), a private home (0700), and the groups of
their role; the first instructor owns the course root, ``~/framework0-academy``: a copy of
the course files (``academy.build.copy_course``: configuration, ``curriculum/``,
``autograder/``) with the roster's learners in its gradebook. Learners' accounts are in the
learners' group, which an ACL keeps out of the checkout's instructor-only files.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from academy import manifest
from academy.build import copy_course
from academy.hub import COURSE_ID, STUDENT_GROUP
from academy.hub.accounts import ensure_account, ensure_group, restrict_checkout, run_as
from academy.hub.roster import Person, load_roster, write_gradebook_csv

__all__ = [
    "HubSettings",
    "course_root_manifest",
    "free_port",
    "prepare",
    "proxy_command",
    "publish_course",
    "publish_issuer",
]

CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_STATE = Path("/var/lib/framework0-academy-hub")
# The Python environment every account's server and nbgrader run from: installed (not
# editable) from the checkout with a Python every account may execute, so no account needs
# the checkout, which stays closed to learners.
DEFAULT_RUNTIME = Path("/opt/framework0-academy/venv")
SYSTEM_PYTHON = "/usr/bin/python3"
COURSE_DIRNAME = COURSE_ID
PROXY_BIN = CHECKOUT / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_command() -> str:
    if PROXY_BIN.exists():
        return str(PROXY_BIN)
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise FileNotFoundError(f"{PROXY_BIN} is missing: run `make hub-proxy` (npm install)")
    return found


@dataclass
class HubSettings:
    """What ``jupyterhub_config.py`` reads (``state/secret/settings.json``)."""

    state: str
    roster: str
    exchange: str = ""
    ip: str = "127.0.0.1"
    port: int = 8000
    learners_group: str = "f0-learners"
    password: str = ""  # the trial authenticator's shared password
    checkout: str = str(CHECKOUT)
    runtime: str = str(DEFAULT_RUNTIME)
    proxy: str = ""  # configurable-http-proxy (npm, hub/node_modules)
    hub_port: int = 0
    proxy_api_port: int = 0
    service_port: int = 0  # the formgrader (the course service, as the instructor)
    grading_port: int = 0  # f0 serve --hub: learners' checks, as the instructor
    # nbgrader's LateSubmissionPlugin.penalty_method: "none" (late work is flagged, graded on
    # its merits) or "zero" (late work scores 0); see docs/hub.md, "Due dates"
    late_penalty: str = "none"
    people: list[dict] = field(default_factory=list)

    @property
    def python_bin(self) -> str:
        return str(Path(self.runtime) / "bin")

    @property
    def state_dir(self) -> Path:
        return Path(self.state)

    @property
    def secret_dir(self) -> Path:
        return self.state_dir / "secret"

    @property
    def settings_file(self) -> Path:
        return self.secret_dir / "settings.json"

    def config_dir(self, role: str) -> Path:
        return self.state_dir / "etc" / role

    def persons(self) -> list[Person]:
        return [Person(**p) for p in self.people]

    def instructors(self) -> list[Person]:
        return [p for p in self.persons() if p.role == "instructor"]

    def learners(self) -> list[Person]:
        return [p for p in self.persons() if p.role == "learner"]

    def course_root(self, person: Person | None = None) -> Path:
        import pwd

        owner = person or self.instructors()[0]
        return Path(pwd.getpwnam(owner.username).pw_dir) / COURSE_DIRNAME

    def save(self) -> Path:
        self.secret_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.secret_dir, 0o700)
        fd = os.open(self.settings_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=1)
        return self.settings_file

    @classmethod
    def load(cls, path: Path) -> HubSettings:
        return cls(**json.loads(Path(path).read_text()))


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _source_stamp(checkout: Path) -> str:
    digest = hashlib.sha256()
    files = [checkout / "pyproject.toml"]
    for package in ("academy", "framework0"):
        files += sorted(
            p
            for p in (checkout / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
    for path in files:
        digest.update(str(path.relative_to(checkout)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def ensure_runtime(settings: HubSettings, log=print) -> Path:
    """Create or refresh the runtime environment (a non-editable install of the checkout)."""
    runtime, checkout = Path(settings.runtime), Path(settings.checkout)
    stamp_file = runtime / "f0-source.sha256"
    stamp = _source_stamp(checkout)
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return runtime
    python = runtime / "bin" / "python"
    if not python.exists():
        log(f"creating {runtime} (a few minutes the first time)")
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(runtime)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--force-reinstall", "--no-deps", str(checkout)], check=True)
    subprocess.run([*pip, f"{checkout}[course,hub]"], check=True)
    subprocess.run([str(python), "-m", "academy.env"], check=True)  # academy.env.SITE_HOOK
    for folder in [runtime, *runtime.parents][:2]:
        os.chmod(folder, 0o755)
    stamp_file.write_text(stamp)
    return runtime


def learner_config(settings: HubSettings) -> Path:
    """JUPYTER_CONFIG_PATH for learners: their nbgrader and server configuration."""
    from academy.learner.lab import LEARNER_HIDDEN_PLUGINS, LEARNER_SERVER_EXTENSIONS_OFF

    folder = settings.config_dir("learner")
    _write(
        folder / "nbgrader_config.py",
        "# Written by academy.hub (make hub): the course and its exchange.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {settings.exchange!r}\n"
        "# stock fetch_feedback, and the certificate beside the feedback (f0 issue --feedback)\n"
        'c.ExchangeFactory.fetch_feedback = "academy.hub.exchange.FetchFeedbackAndCertificate"\n',
    )
    off = [n for n in LEARNER_SERVER_EXTENSIONS_OFF if not n.endswith("assignment_list")]
    _write(
        folder / "jupyter_server_config.py",
        "# Written by academy.hub: learners' servers have no instructor tools.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.ServerApp.jpserver_extensions = {dict.fromkeys(off, False)!r}\n"
        "c.LabApp.expose_app_in_browser = True  # the check buttons (academy.learner.incell)\n"
        "c.LabApp.news_url = None\n",
    )
    # the exchange works on the hub: its Assignment List, and the menu that opens it, stay
    hidden = [
        n for n in LEARNER_HIDDEN_PLUGINS if not n.endswith(("assignment-list", "nbgrader:menu"))
    ]
    _write(
        folder / "labconfig" / "page_config.json",
        json.dumps({"disabledExtensions": dict.fromkeys(hidden, True)}, indent=1) + "\n",
    )
    return folder


def instructor_config(settings: HubSettings) -> Path:
    """JUPYTER_CONFIG_PATH for instructors: the exchange and the hardened collect."""
    folder = settings.config_dir("instructor")
    _write(
        folder / "nbgrader_config.py",
        "# Written by academy.hub (make hub): the exchange, and a collect that follows no link.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Exchange.root = {settings.exchange!r}\n"
        'c.ExchangeFactory.collect = "academy.hub.exchange.SafeCollect"\n'
        "# work submitted after the gradebook's due date: flagged late, and this penalty\n"
        f"c.LateSubmissionPlugin.penalty_method = {settings.late_penalty!r}\n",
    )
    return folder


def course_root_manifest(settings: HubSettings) -> manifest.Course:
    """The course root's ``course.yaml``, read now (not cached: the instructor may change it)."""
    return manifest.load.__wrapped__(settings.course_root())  # type: ignore[no-any-return]


def publish_issuer(settings: HubSettings, course: manifest.Course | None = None) -> Path | None:
    """Publish the course root's certificate key to learners (their configuration folder), so
    ``f0 verify`` on a learner's account judges certificates against it; None when the course
    publishes no key. ``course``: the course root's manifest, when read already."""
    from academy.certificates.published import write_published_issuer

    course = course or course_root_manifest(settings)
    if course.issuer is None:
        return None
    return write_published_issuer(
        settings.config_dir("learner"), course.course_id, course.issuer.name, course.issuer.key_id
    )


def publish_course(settings: HubSettings, course: manifest.Course | None = None) -> Path:
    """Publish the course root's ``course.yaml`` to learners (their configuration folder), so
    a fetched notebook's grade cells and ``f0 check`` know the course's modules and exercises;
    the checks themselves run on the course's grading service (``f0 serve --hub``).
    ``course``: the course root's manifest, when read already."""
    from academy.learner.published import write_published_course

    course = course or course_root_manifest(settings)
    return write_published_course(settings.config_dir("learner"), course)


def make_course_root(settings: HubSettings, instructor: Person) -> Path:
    """The instructor's course root, a copy of the course files; kept when it exists."""
    root = settings.course_root(instructor)
    if not root.exists():
        course = manifest.load(CHECKOUT)
        with tempfile.TemporaryDirectory(dir=root.parent, prefix=".f0-course-") as tmp:
            copy_course(course, Path(tmp))
            write_gradebook_csv(settings.persons(), Path(tmp) / "roster.csv")
            os.chmod(tmp, 0o700)
            os.rename(tmp, root)
            Path(tmp).mkdir()  # TemporaryDirectory removes what it made
        subprocess.run(["chown", "-R", f"{instructor.username}:", str(root)], check=True)
    env = {"JUPYTER_CONFIG_PATH": str(settings.config_dir("instructor"))}
    write_gradebook_csv(settings.persons(), root / "roster.csv")
    shutil.chown(root / "roster.csv", instructor.username)
    run_as(
        instructor.username,
        ["nbgrader", "db", "student", "import", "roster.csv"],
        cwd=root,
        env=env,
        bin_dir=settings.python_bin,
    )
    return root


def prepare(settings: HubSettings) -> HubSettings:
    """Accounts, groups, exchange, configuration and the course root; then save settings."""
    if os.geteuid() != 0:
        raise PermissionError("the hub makes local accounts: run it as root")
    people = load_roster(Path(settings.roster), prefix="f0-")
    settings.people = [asdict(p) for p in people]
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o755)
    (state / "etc").mkdir(exist_ok=True)
    os.chmod(state / "etc", 0o755)
    settings.exchange = settings.exchange or str(state / "exchange")
    exchange = Path(settings.exchange)
    exchange.mkdir(parents=True, exist_ok=True)
    os.chmod(exchange, 0o1777)
    if not settings.password:
        settings.password = secrets.token_urlsafe(12)
    for attr in ("hub_port", "proxy_api_port", "service_port", "grading_port"):
        if not getattr(settings, attr):
            setattr(settings, attr, free_port())
    settings.proxy = settings.proxy or str(PROXY_BIN)
    settings.save()
    ensure_runtime(settings)

    learners_gid = ensure_group(settings.learners_group)
    for person in people:
        groups = [settings.learners_group] if person.role == "learner" else []
        ensure_account(person.username, person.full_name, groups)
    restrict_checkout(Path(settings.checkout), learners_gid)
    learner_config(settings)
    instructor_config(settings)
    make_course_root(settings, settings.instructors()[0])
    course = course_root_manifest(settings)  # read once for both
    publish_issuer(settings, course)
    publish_course(settings, course)
    return settings


def learner_usernames(settings: HubSettings) -> list[str]:
    return [p.username for p in settings.learners()]


def groups(settings: HubSettings) -> dict[str, list[str]]:
    from academy.hub import FORMGRADE_GROUP, INSTRUCTORS_GROUP

    instructors = [p.username for p in settings.instructors()]
    return {
        INSTRUCTORS_GROUP: instructors,
        FORMGRADE_GROUP: instructors,
        STUDENT_GROUP: learner_usernames(settings),
    }
