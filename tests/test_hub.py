"""The course on JupyterHub (academy/hub, docs/hub.md), with real local accounts.

* the whole nbgrader exchange loop with stock commands run AS each account: the instructor
  generates and releases, two learners fetch, work (one fully correct, one partial) and
  submit, the instructor collects, autogrades (sandboxed), generates and releases feedback,
  the learners fetch it and read per-exercise messages; exact scores in the gradebook;
* from each learner's account: no other learner's files, no hidden suites, curriculum,
  solutions or checkout;
* a learner's symbolic links (and forged names) in the exchange do not make collect hand
  over the instructor's files;
* the real hub: logins, spawned servers, the formgrader for the instructor only (browser).

Needs root (useradd, runuser); every account, process and file made here is removed.
Run alone with ``.venv/bin/python -m pytest tests/test_hub.py``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from course_tools import course, solution_sources

if os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("useradd"):
    pytest.skip("the hub tests make local accounts: run as root", allow_module_level=True)
pytest.importorskip("jupyterhub")

from academy.hub import COURSE_ID  # noqa: E402
from academy.hub.__main__ import hub_command, remove  # noqa: E402
from academy.hub.accounts import run_as  # noqa: E402
from academy.hub.deploy import PROXY_BIN, HubSettings, free_port, prepare  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hub")]

COURSE = course()
MODULE = COURSE.module("module1")
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "hub"
CHECKOUT = COURSE.root
TIMINGS: dict[str, float] = {}
PARTIAL = ("1.1", "1.2")  # the partial learner solves these exercises only


@pytest.fixture(scope="module")
def deployment():
    """A prepared hub deployment: accounts, exchange, config, the instructor's course root."""
    tag = secrets.token_hex(2)
    # every account must reach the state folder: not under pytest's private (0700) tmp
    base = Path(tempfile.mkdtemp(prefix="f0-hub-test-", dir="/tmp"))
    names = {"instructor": f"f0-t{tag}-i", "ada": f"f0-t{tag}-ada", "alan": f"f0-t{tag}-alan"}
    roster = base / "roster.csv"
    roster.write_text(
        "username,first_name,last_name,email,role\n"
        f"{names['instructor']},Grace,Hopper,grace@example.org,instructor\n"
        f"{names['ada']},Ada,Lovelace,ada@example.org,learner\n"
        f"{names['alan']},Alan,Turing,alan@example.org,learner\n"
    )
    settings = HubSettings(
        state=str(base / "state"),
        roster=str(roster),
        learners_group=f"f0-t{tag}-l",
        password=secrets.token_urlsafe(8),
        port=free_port(),
    )
    os.chmod(base, 0o755)
    start = time.monotonic()
    try:
        prepare(settings)
        TIMINGS["prepare"] = time.monotonic() - start
        yield settings, names
    finally:
        if os.environ.get("F0_HUB_KEEP") != "1":  # keep everything to look at (then --remove)
            remove(settings)
            shutil.rmtree(base, ignore_errors=True)
        print("\nhub timings (s):", json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}))


def as_instructor(settings, names, *args, check=True):
    return run_as(
        names["instructor"],
        list(args),
        cwd=settings.course_root(),
        env={"JUPYTER_CONFIG_PATH": str(settings.config_dir("instructor"))},
        bin_dir=settings.python_bin,
        check=check,
        timeout=900,
    )


def as_learner(settings, name, *args, check=True):
    return run_as(
        name,
        list(args),
        env={"JUPYTER_CONFIG_PATH": str(settings.config_dir("learner"))},
        bin_dir=settings.python_bin,
        check=check,
        timeout=300,
    )


def home(name: str) -> Path:
    import pwd

    return Path(pwd.getpwnam(name).pw_dir)


def fill(path: Path, solved: set[str] | None) -> None:
    """Put the reference solution into the fetched notebook's solution cells (as a learner
    would type them): all of them, or those of the exercises in ``solved``."""
    solutions = solution_sources(COURSE, MODULE)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        exercise = re.sub(r"^ex_(\d+)_(\d+)_solution$", r"\1.\2", grade_id or "")
        if grade_id in solutions and (solved is None or exercise in solved):
            cell.source = solutions[grade_id]
    stat = path.stat()
    nbformat.write(nb, path)
    os.chown(path, stat.st_uid, stat.st_gid)


def timed(step: str):
    class _T:
        def __enter__(self):
            self.start = time.monotonic()

        def __exit__(self, *exc):
            TIMINGS[step] = TIMINGS.get(step, 0) + time.monotonic() - self.start

    return _T()


@pytest.fixture(scope="module")
def loop(deployment):
    """The whole exchange loop, each step a stock nbgrader command run as its account."""
    settings, names = deployment
    learners = [names["ada"], names["alan"]]
    a = MODULE.id
    start = time.monotonic()
    with timed("generate_assignment"):
        as_instructor(settings, names, "nbgrader", "generate_assignment", a, "--force")
    with timed("release_assignment"):
        as_instructor(settings, names, "nbgrader", "release_assignment", a)
    for learner in learners:
        with timed("fetch_assignment"):
            as_learner(settings, learner, "nbgrader", "fetch_assignment", a)
    fill(home(names["ada"]) / a / MODULE.notebook, None)
    fill(home(names["alan"]) / a / MODULE.notebook, set(PARTIAL))
    for learner in learners:
        with timed("submit"):
            as_learner(settings, learner, "nbgrader", "submit", a)
    with timed("collect"):
        as_instructor(settings, names, "nbgrader", "collect", a)
    with timed("autograde"):
        graded = as_instructor(settings, names, "nbgrader", "autograde", a)
    with timed("f0 autograde --force (parallel)"):
        f0 = as_instructor(settings, names, "f0", "autograde", a, "--force")
    graded.stderr += f0.stdout + f0.stderr
    with timed("generate_feedback"):
        as_instructor(settings, names, "nbgrader", "generate_feedback", a)
    with timed("release_feedback"):
        as_instructor(settings, names, "nbgrader", "release_feedback", a)
    for learner in learners:
        with timed("fetch_feedback"):
            as_learner(settings, learner, "nbgrader", "fetch_feedback", a)
    TIMINGS["exchange loop total"] = time.monotonic() - start
    return settings, names, graded


def gradebook_scores(settings) -> dict[str, tuple[float, dict[str, float]]]:
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{settings.course_root() / 'gradebook.db'}", COURSE_ID) as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission(MODULE.id, student.id)
            except Exception:
                continue
            nb = sub.notebooks[0]
            scores[student.id] = (
                sub.score,
                {g.name: g.score for g in nb.grades if g.name.startswith("hidden_")},
            )
    return scores


def test_gradebook_scores_are_exact(loop):
    settings, names, graded = loop
    scores = gradebook_scores(settings)
    full = {e.grade_cell: float(e.points) for e in MODULE.exercises}
    partial = {e.grade_cell: float(e.points if e.id in PARTIAL else 0) for e in MODULE.exercises}
    assert scores[names["ada"]] == (sum(full.values()), full), graded.stderr[-3000:]
    assert scores[names["alan"]] == (sum(partial.values()), partial), graded.stderr[-3000:]


def test_roster_names_reach_the_gradebook(loop):
    from nbgrader.api import Gradebook

    settings, names, _ = loop
    with Gradebook(f"sqlite:///{settings.course_root() / 'gradebook.db'}", COURSE_ID) as gb:
        ada = gb.find_student(names["ada"])
        assert (ada.first_name, ada.last_name, ada.email) == ("Ada", "Lovelace", "ada@example.org")


def test_learners_read_their_feedback_per_exercise(loop):
    settings, names, _ = loop
    for learner in (names["ada"], names["alan"]):
        found = as_learner(
            settings,
            learner,
            "python",
            "-c",
            "import glob,os,sys; f=sorted(glob.glob(os.path.expanduser("
            f"'~/{MODULE.id}/feedback/*/*.html'))); sys.stdout.write(open(f[-1]).read())",
        ).stdout
        for exercise in MODULE.exercises:
            assert exercise.grade_cell in found or exercise.id in found
    alan = as_learner(
        settings,
        names["alan"],
        "python",
        "-c",
        "import glob,os,sys; f=sorted(glob.glob(os.path.expanduser("
        f"'~/{MODULE.id}/feedback/*/*.html'))); sys.stdout.write(open(f[-1]).read())",
    ).stdout
    # the partial learner is told, per exercise, what is wrong (and never the hidden code)
    assert re.search(r"NotImplementedError|not implemented|wrong|expected", alan, re.I)
    assert "def test_" not in alan and "@case(" not in alan


PROBE = r"""
import json, os, sys
out = {}
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        out[path] = "read"
    except PermissionError:
        out[path] = "denied"
    except FileNotFoundError:
        out[path] = "absent"
print(json.dumps(out))
"""


def test_learners_cannot_read_others_or_instructor_files(loop):
    settings, names, _ = loop
    root = settings.course_root()
    suite = root / "autograder" / f"test_{MODULE.id}.py"
    source = root / "curriculum" / MODULE.id / MODULE.notebook
    exchange = Path(settings.exchange) / COURSE_ID
    for me, other in ((names["ada"], names["alan"]), (names["alan"], names["ada"])):
        targets = {
            "own notebook": home(me) / MODULE.id / MODULE.notebook,
            "other's notebook": home(other) / MODULE.id / MODULE.notebook,
            "other's home": home(other),
            "hidden suite": suite,
            "curriculum": source,
            "instructor's course root": root,
            "gradebook": root / "gradebook.db",
            "submitted": root / "submitted" / other / MODULE.id / MODULE.notebook,
            "checkout suite": CHECKOUT / "autograder" / f"test_{MODULE.id}.py",
            "checkout curriculum": CHECKOUT / "curriculum",
            "checkout solutions": CHECKOUT / "solutions" / MODULE.id / MODULE.notebook,
            "checkout git": CHECKOUT / ".git" / "HEAD",
            "exchange inbound": exchange / "inbound",
            "exchange feedback list": exchange / "feedback",
        }
        result = json.loads(
            as_learner(settings, me, "python", "-c", PROBE, *map(str, targets.values())).stdout
        )
        seen = {label: result[str(path)] for label, path in targets.items()}
        assert seen.pop("own notebook") == "read"
        assert all(v in ("denied", "absent") for v in seen.values()), (me, seen)
        # what the learner's server runs: the installed course package, not the checkout
        where = as_learner(settings, me, "python", "-c", "import academy;print(academy.__file__)")
        assert where.stdout.startswith(settings.runtime)


def stock_collect(settings, names, folder):
    as_instructor(
        settings,
        names,
        "nbgrader",
        "collect",
        MODULE.id,
        "--update",
        "--ExchangeFactory.collect=nbgrader.exchange.default.collect.ExchangeCollect",
        f"--CourseDirectory.submitted_directory={folder}",
    )


def test_collect_follows_no_learner_link(loop):
    """A learner plants links to the instructor's files in the exchange; collect must not
    copy the targets (stock nbgrader does, shown first), nor accept a forged name."""
    settings, names, _ = loop
    root = settings.course_root()
    alan, ada = names["alan"], names["ada"]
    inbound = Path(settings.exchange) / COURSE_ID / "inbound"
    planted = f"{alan}+{MODULE.id}+2099-01-01 00:00:00.000000 UTC+evil"
    forged = f"{alan}+{MODULE.id}+2099-01-02 00:00:00.000000 UTC+forged"
    plant = (
        "import os,sys; d=sys.argv[1]; os.mkdir(d); "
        "os.symlink(sys.argv[2], os.path.join(d, sys.argv[4])); "
        "os.symlink(sys.argv[3], os.path.join(d, 'steal.py')); "
        "open(os.path.join(d,'timestamp.txt'),'w').write('2099-01-01 00:00:00.000000 UTC')"
    )
    secret_nb = root / "curriculum" / MODULE.id / MODULE.notebook
    suite = root / "autograder" / f"test_{MODULE.id}.py"
    as_learner(
        settings,
        alan,
        "python",
        "-c",
        plant,
        str(inbound / planted),
        str(secret_nb),
        str(suite),
        MODULE.notebook,
    )
    # stock nbgrader collect, into a scratch folder: it copies the links' targets
    stock_collect(settings, names, "stock_submitted")
    stock = root / "stock_submitted" / alan / MODULE.id
    assert (stock / "steal.py").read_bytes() == suite.read_bytes()
    assert b"BEGIN SOLUTION" in (stock / MODULE.notebook).read_bytes()

    # another learner submits under alan's name, later still
    forge = (
        "import os,sys; d=sys.argv[1]; os.mkdir(d); "
        "open(os.path.join(d,'timestamp.txt'),'w').write('2099-01-02 00:00:00.000000 UTC')"
    )
    as_learner(settings, ada, "python", "-c", forge, str(inbound / forged))
    stock_collect(settings, names, "stock_submitted_2")  # stock: the forgery replaces alan's
    forged_copy = root / "stock_submitted_2" / alan / MODULE.id / "timestamp.txt"
    assert forged_copy.read_text().startswith("2099-01-02")

    # the hub's collect (SafeCollect, configured for the instructor)
    with timed("collect (hardened, attack)"):
        safe = as_instructor(settings, names, "nbgrader", "collect", MODULE.id, "--update")
    got = root / "submitted" / alan / MODULE.id
    assert not (got / "steal.py").exists()
    notebook = got / MODULE.notebook
    assert not notebook.exists() or b"BEGIN SOLUTION" not in notebook.read_bytes()
    assert not any(p.is_symlink() for p in got.rglob("*"))
    assert "forged" in safe.stderr and "belongs to uid" in safe.stderr
    assert (got / "timestamp.txt").read_text().startswith("2099-01-01")  # the genuine latest


# --- the real hub --------------------------------------------------------------------------


def _get(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(scope="module")
def hub(deployment):
    settings, names = deployment
    if not PROXY_BIN.exists():
        subprocess.run(["make", "-C", str(CHECKOUT), "hub-proxy"], check=True)
    cmd, env = hub_command(settings)
    log = open(Path(settings.state) / "hub.log", "w")
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=settings.secret_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{settings.port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if _get(f"{url}/hub/api/", timeout=2) == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("the hub did not answer within 60 s")
        assert proc.poll() is None, Path(settings.state, "hub.log").read_text()[-3000:]
        TIMINGS["hub start"] = time.monotonic() - start
        yield settings, names, url, proc
    finally:
        stop = time.monotonic()
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        TIMINGS["hub stop"] = time.monotonic() - stop
        log.close()


def _login(browser, url, name, password):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")
    return context, page


def test_hub_formgrader_for_the_instructor_only(hub):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    from test_browser import LAUNCH_ARGS

    settings, names, url, proc = hub
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    service = f"{url}/services/{COURSE_ID}"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=LAUNCH_ARGS)
        try:
            # the instructor: logs in, gets a server, and the course's formgrader
            start = time.monotonic()
            ctx, page = _login(browser, url, names["instructor"], settings.password)
            page.wait_for_url(re.compile(r".*/user/.*/lab.*"), timeout=120_000)
            page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
            TIMINGS["instructor login + spawn + lab"] = time.monotonic() - start
            page.wait_for_selector(".jp-DirListing-item >> text=autograder", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "instructor-lab.png"))
            # nbgrader issue 1870: JupyterHub forbids framing single-user pages, so the lab's
            # Formgrader panel (an iframe) stays blank; the hub keeps that protection and the
            # formgrader is the course service's own page instead (docs/hub.md)
            own = ctx.request.get(f"{url}/user/{names['instructor']}/formgrader")
            assert "frame-ancestors 'none'" in own.headers.get("content-security-policy", "")
            start = time.monotonic()
            response = page.goto(f"{service}/formgrader", timeout=120_000)
            page.wait_for_selector("text=Manage Assignments", timeout=120_000)
            page.wait_for_selector(f"text={MODULE.id}", timeout=60_000)
            TIMINGS["formgrader (service) first page"] = time.monotonic() - start
            page.screenshot(path=str(ARTIFACTS / "instructor-formgrader.png"), full_page=True)
            csp = response.headers.get("content-security-policy", "")
            # JupyterHub's protection stays on: the formgrader is a top-level page, not an
            # iframe (nbgrader issue 1870; docs/hub.md)
            assert "frame-ancestors" in csp, csp
            # the gradebook behind it knows the roster's names
            page.goto(f"{service}/formgrader/manage_students")
            page.wait_for_selector("text=Lovelace", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "instructor-students.png"), full_page=True)
            ctx.close()

            # a learner: logs in, gets a server, but no formgrader anywhere
            start = time.monotonic()
            ctx, page = _login(browser, url, names["ada"], settings.password)
            page.wait_for_url(re.compile(r".*/user/.*/lab.*"), timeout=120_000)
            page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
            TIMINGS["learner login + spawn + lab"] = time.monotonic() - start
            page.wait_for_selector(f".jp-DirListing-item >> text={MODULE.id}", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "learner-lab.png"))
            denied = page.goto(f"{service}/formgrader", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "learner-formgrader-denied.png"))
            assert denied.status == 403, denied.status
            own = page.goto(f"{url}/user/{names['ada']}/formgrader")
            assert own.status == 404, own.status
            other = page.goto(f"{url}/user/{names['instructor']}/lab")
            assert other.status in (403, 404) or "/user/" + names["ada"] in page.url
            # the assignment list (nbgrader's lab extension API) shows the released module
            page.goto(f"{url}/user/{names['ada']}/lab")
            page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
            xsrf = next((c["value"] for c in ctx.cookies() if c["name"] == "_xsrf"), "")
            listed = ctx.request.get(
                f"{url}/user/{names['ada']}/assignments?course_id={COURSE_ID}",
                headers={"X-XSRFToken": xsrf},
            )
            assert listed.status == 200, listed.text()[:500]
            assert MODULE.id in listed.text()
            ctx.close()
        finally:
            browser.close()
    assert proc.poll() is None
