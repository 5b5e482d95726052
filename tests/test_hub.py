"""The course on JupyterHub (academy/hub, docs/hub.md), with real local accounts.

* the whole nbgrader exchange loop with stock commands run AS each account: the instructor
  generates and releases, two learners fetch, work (one fully correct, one partial) and
  submit, the instructor collects, autogrades (sandboxed), generates and releases feedback,
  the learners fetch it and read per-exercise messages; exact scores in the gradebook;
* from each learner's account: no other learner's files, no hidden suites, curriculum,
  solutions or checkout;
* a learner's symbolic links (and forged names) in the exchange do not make collect hand
  over the instructor's files;
* certificates through the feedback channel: ``f0 issue --feedback``, release_feedback,
  fetch_feedback; the learner who earned one verifies it on her own account, a tampered copy
  fails, the partial learner gets none;
* a late resubmission: collect takes the newest, autograde grades it, the gradebook shows it
  late under the course's penalty (and nbgrader's "zero"), honest scores stay exact;
* the real hub: logins, spawned servers, the formgrader for the instructor only (browser);
* the whole loop in browsers (module 2): the instructor generates, releases, collects,
  autogrades and generates and releases feedback in the formgrader; two learners, each in a
  browser context of their own, fetch from the Assignment List, type their solutions into
  the page, check exercises there (on the hub's grading service, `f0 serve --hub`), submit,
  fetch feedback, read its per-exercise messages, and one opens and verifies her certificate.

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
CHROMIUM = Path("/usr/bin/chromium")
try:
    from playwright import sync_api
except ImportError:  # the browser steps skip
    sync_api = None  # type: ignore[assignment]
PARTIAL = ("1.1", "1.2")  # the partial learner solves these exercises only
PARTIAL_CELLS = {f"ex_{e.replace('.', '_')}_solution" for e in PARTIAL}


@pytest.fixture(scope="module")
def deployment():
    """A prepared hub deployment: accounts, exchange, config, the instructor's course root."""
    tag = secrets.token_hex(2)
    # every account must reach the state folder: not under pytest's private (0700) tmp
    base = Path(tempfile.mkdtemp(prefix="f0-hub-test-", dir="/tmp"))
    names = {
        "instructor": f"f0-t{tag}-i",
        "ada": f"f0-t{tag}-ada",  # fully correct, through the loop
        "alan": f"f0-t{tag}-alan",  # exercises 1.1 and 1.2 only, through the loop
        "kat": f"f0-t{tag}-kat",  # submits on time, then again after the due date
        "rad": f"f0-t{tag}-rad",  # module 2 in the browser, fully correct
        "mae": f"f0-t{tag}-mae",  # module 2 in the browser, exercise 2.1 only
    }
    roster = base / "roster.csv"
    roster.write_text(
        "username,first_name,last_name,email,role\n"
        f"{names['instructor']},Grace,Hopper,grace@example.org,instructor\n"
        f"{names['ada']},Ada,Lovelace,ada@example.org,learner\n"
        f"{names['alan']},Alan,Turing,alan@example.org,learner\n"
        f"{names['kat']},Katherine,Johnson,kat@example.org,learner\n"
        f"{names['rad']},Radia,Perlman,radia@example.org,learner\n"
        f"{names['mae']},Mae,Jemison,mae@example.org,learner\n"
    )
    settings = HubSettings(
        state=str(base / "state"),
        roster=str(roster),
        learners_group=f"f0-t{tag}-l",
        password=secrets.token_urlsafe(8),
        port=free_port(),
    )
    if os.environ.get("F0_HUB_RUNTIME"):  # another runtime environment (two checkouts at once)
        settings.runtime = os.environ["F0_HUB_RUNTIME"]
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


def gradebook_scores(settings, assignment: str = MODULE.id) -> dict[str, tuple[float, dict]]:
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{settings.course_root() / 'gradebook.db'}", COURSE_ID) as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission(assignment, student.id)
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


# --- certificates through the feedback channel ---------------------------------------------

PUBLISH_TEST_KEY = r"""
import pathlib, shutil, sys, yaml
root = pathlib.Path.cwd()
raw = yaml.safe_load((root / "course.yaml").read_text())
raw["issuer"] = {"name": raw["issuer"]["name"], "key_id": sys.argv[1],
                 "public_key": "course-public.pem"}
raw["levels"] = [{"id": "bronze", "title": "Context Fundamentals", "modules": [1]}]
(root / "course.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
shutil.copy(pathlib.Path.home() / ".config/framework0-academy/issuer-public.pem",
            root / "course-public.pem")
"""

FIND_CERTIFICATE = (
    "import glob,os; print('\\n'.join(sorted(glob.glob(os.path.expanduser("
    f"'~/{MODULE.id}/feedback/*/*.html')))))"
)

TAMPER = r"""
import json, sys
page = open(sys.argv[1], encoding="utf-8").read()
for copy, (old, new) in json.loads(sys.argv[2]).items():
    assert page.count(old) == 1, old
    open(copy, "w", encoding="utf-8").write(page.replace(old, new))
"""


@pytest.fixture(scope="module")
def certificates(loop):
    """The course's key for this deployment, certificates issued into the feedback folders,
    released and fetched with the stock commands, each as its own account.

    The course's private key is not in the repository, so the instructor makes one with
    ``f0 keygen`` and publishes it in the course root's course.yaml (as docs/instructors.md
    says to); Bronze is narrowed to module 1 there, the one module the loop grades (the real
    Bronze needs modules 1 to 4). The hub publishes the course's key to learners at start
    (``publish_issuer``); it is called again here, as the next ``make hub`` would."""
    from academy.hub.deploy import publish_issuer

    settings, names, _ = loop
    a = MODULE.id
    with timed("certificates: keygen + publish the key"):
        made = as_instructor(settings, names, "f0", "keygen").stdout
        key_id = re.search(r"key id: (did:key:\S+)", made).group(1)
        as_instructor(settings, names, "python", "-c", PUBLISH_TEST_KEY, key_id)
        publish_issuer(settings)
    with timed("f0 issue --feedback"):
        issued = as_instructor(settings, names, "f0", "issue", "--feedback", a).stdout
    with timed("release_feedback (with certificates)"):
        as_instructor(settings, names, "nbgrader", "release_feedback", a)
    fetched = {}
    for learner in (names["ada"], names["alan"]):
        with timed("fetch_feedback (with certificates)"):
            as_learner(settings, learner, "nbgrader", "fetch_feedback", a)
        fetched[learner] = as_learner(settings, learner, "python", "-c", FIND_CERTIFICATE).stdout
    return settings, names, key_id, issued, fetched


def test_certificates_reach_learners_through_the_feedback_channel(certificates):
    settings, names, key_id, issued, fetched = certificates
    ada, alan = names["ada"], names["alan"]
    assert "1 certificate(s) issued" in issued, issued
    assert f"{ada}: bronze" in issued and f"{alan}: no level reached" in issued, issued
    feedback = settings.course_root() / "feedback"
    assert (feedback / ada / MODULE.id / "certificate.html").is_file()
    assert not (feedback / alan / MODULE.id / "certificate.html").exists()

    ada_files = fetched[ada].splitlines()
    found = [Path(f) for f in ada_files if f.endswith("/certificate.html")]
    assert len(found) == 1, f"fetch_feedback brought Ada no certificate: {ada_files}"
    certificate = found[0]
    assert certificate.parent.parent == home(ada) / MODULE.id / "feedback"
    assert any(f.endswith(f"/{Path(MODULE.notebook).stem}.html") for f in ada_files)
    # the partial learner earned no level: his feedback, and no certificate
    assert fetched[alan].splitlines() and "certificate" not in fetched[alan], fetched[alan]

    page = certificate.read_text(encoding="utf-8")  # read only; the file is Ada's
    assert "Ada Lovelace" in page and ">bronze<" in page  # the roster's name, the gradebook
    assert '<script type="application/jwt" id="f0-credential">' in page
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", page)  # self-contained
    if CHROMIUM.exists() and sync_api is not None:  # a look at it, as a browser shows it
        with sync_api.sync_playwright() as pw:
            from test_browser import LAUNCH_ARGS

            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            try:
                view = browser.new_page(viewport={"width": 1100, "height": 900})
                view.set_content(page)
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                view.screenshot(path=str(ARTIFACTS / "learner-certificate.png"), full_page=True)
            finally:
                browser.close()

    # Ada verifies it offline, on her own account, against the course's published key
    with timed("f0 verify (as the learner)"):
        ok = as_learner(settings, ada, "f0", "verify", str(certificate), check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"OK: Bronze: Context Fundamentals for Ada Lovelace ({ada})")
    assert f"issued by Framework0 Academy (course key {key_id})" in ok.stdout

    # a copy with one character changed (name, level, or inside the credential) fails
    tampered = {
        "name": ("Ada Lovelace</div>", "Ada Lovelacf</div>", "'Ada Lovelacf'"),
        "level": ('<div class="medal">bronze', '<div class="medal">silver', "'silver'"),
    }
    token = re.search(r'id="f0-credential">([^<]+)<', page).group(1)
    middle = token.index(".") + 40
    changed = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    tampered["credential"] = (f'-credential">{token}', f'-credential">{changed}', "bad signature")
    copies = {str(home(ada) / f"tampered-{what}.html"): what for what in tampered}
    edits = {copy: tampered[what][:2] for copy, what in copies.items()}
    as_learner(settings, ada, "python", "-c", TAMPER, str(certificate), json.dumps(edits))
    for copy, what in copies.items():
        said = tampered[what][2]
        bad = as_learner(settings, ada, "f0", "verify", copy, check=False)
        assert bad.returncode == 1, (what, bad.stdout, bad.stderr)
        assert bad.stdout.startswith("FAILED: ") and said in bad.stdout, (what, bad.stdout)
        assert not any(line.startswith("OK") for line in bad.stdout.splitlines())
        assert "Traceback" not in bad.stderr
        if what != "credential":  # the credential verified; one line says what differs
            assert bad.stdout.count("\n") == 1, bad.stdout


# --- due dates, late work and resubmissions ------------------------------------------------

WRITE_CELLS = r"""
import json, sys, nbformat
path, sources = sys.argv[1], json.loads(sys.argv[2])
nb = nbformat.read(path, as_version=4)
for cell in nb.cells:
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    if grade_id in sources:
        cell.source = sources[grade_id]
nbformat.write(nb, path)
"""


def write_cells_as(settings, learner: str, sources: dict[str, str]) -> None:
    """The learner's own account writes these solution cells into their fetched notebook."""
    path = str(home(learner) / MODULE.id / MODULE.notebook)
    as_learner(settings, learner, "python", "-c", WRITE_CELLS, path, json.dumps(sources))


def submitted_at(result) -> str:
    """The timestamp ``nbgrader submit`` logs ("Submitted as: COURSE ASSIGNMENT TIMESTAMP")."""
    found = re.search(r"Submitted as: \S+ \S+ (\d{4}-\d\d-\d\d [\d:.]+ \S+)", result.stderr)
    assert found, result.stderr[-2000:]
    return found.group(1)


def test_late_resubmission_is_collected_graded_and_flagged(loop):
    """Kat submits exercises 1.1 and 1.2, the due date passes, she submits again, now fully
    correct. Collect takes the newest, autograde grades it, and the gradebook shows it late
    under the course's penalty ("none": flagged, graded on its merits, so it counts for a
    certificate); nbgrader's "zero" method, given on the command line, makes the penalty the
    whole score, which certificates then count as 0. The due date is set to the first
    submission's own timestamp (on time: 0 s late), so nothing waits on the clock."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    from academy.certificates.issue import GradebookScores

    settings, names, _ = loop
    kat, a = names["kat"], MODULE.id
    solutions = solution_sources(COURSE, MODULE)
    marker = f"# resubmitted after the due date {secrets.token_hex(4)}"
    with timed("late: fetch + submit twice + due date"):
        as_learner(settings, kat, "nbgrader", "fetch_assignment", a)
        write_cells_as(settings, kat, {k: v for k, v in solutions.items() if k in PARTIAL_CELLS})
        first = submitted_at(as_learner(settings, kat, "nbgrader", "submit", a))
        due = f"--duedate={first}"
        as_instructor(settings, names, "nbgrader", "db", "assignment", "add", a, due)
        again = dict(solutions, ex_1_1_solution=f"{marker}\n{solutions['ex_1_1_solution']}")
        write_cells_as(settings, kat, again)
        second = submitted_at(as_learner(settings, kat, "nbgrader", "submit", a))
    assert parse_utc(second) > parse_utc(first)

    with timed("late: collect"):
        as_instructor(settings, names, "nbgrader", "collect", a, f"--student={kat}")
    collected = settings.course_root() / "submitted" / kat / a
    assert (collected / "timestamp.txt").read_text().strip() == second  # the newest
    assert marker in (collected / MODULE.notebook).read_text()

    db = f"sqlite:///{settings.course_root() / 'gradebook.db'}"
    partial = sum(float(e.points) for e in MODULE.exercises if e.id in PARTIAL)
    full = float(sum(e.points for e in MODULE.exercises))
    counted = GradebookScores(COURSE, settings.course_root() / "autograded")

    def graded(*extra: str):
        as_instructor(settings, names, "nbgrader", "autograde", a, f"--student={kat}", *extra)
        with Gradebook(db, COURSE_ID) as gb:
            sub = gb.find_submission(a, kat)
            (certified,) = counted.read(gb, [kat], [a])
            return (
                sub.assignment.duedate,
                sub.timestamp,
                sub.total_seconds_late,
                sub.score,  # nbgrader's raw score; the penalty is kept apart
                float(sub.late_submission_penalty or 0),
                certified.scores[a],  # what certificates count
            )

    with timed("late: autograde (nbgrader's penalty 'zero', given)"):
        zero = graded("--LateSubmissionPlugin.penalty_method=zero")
    with timed("late: autograde (the course's penalty)"):
        duedate, timestamp, late, raw, penalty, counts = graded("--force")
    assert duedate == parse_utc(first) and timestamp == parse_utc(second)
    assert late == (timestamp - duedate).total_seconds() > 0  # the first was on time
    assert raw == full != partial  # the resubmission was graded, not the first
    assert (penalty, counts) == (0.0, full)  # the course: flagged late, graded on its merits
    assert zero[3:] == (full, full, 0.0)  # "zero": the penalty is the whole score
    instructor_config = (settings.config_dir("instructor") / "nbgrader_config.py").read_text()
    assert "c.LateSubmissionPlugin.penalty_method = 'none'" in instructor_config

    # honest, on-time students keep their exact scores
    scores = gradebook_scores(settings)
    assert scores[names["ada"]][0] == full and scores[names["alan"]][0] == partial


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


def test_what_learners_hold_has_no_suite_and_no_solution(certificates):
    """After the loop (fetched notebooks, feedback, certificates): nothing a learner holds,
    in their home, in the learners' configuration folder (the published course.yaml, the
    course key, nbgrader's settings) or in what the exchange releases, has a line of
    hidden-suite code; the configuration folder and the release have no reference-solution
    line either (a home holds the learner's own answers, which for Ada are the reference's)."""
    from test_service import fingerprints, suite_code_lines

    settings, names, *_ = certificates
    # a learner's own answers may share a line with a suite (Ada's are the reference's)
    answers = "\n".join(t for m in COURSE.modules for t in solution_sources(COURSE, m).values())
    suite_marks = {line for line in suite_code_lines() if line not in answers}
    all_marks = fingerprints()
    assert len(suite_marks) > 100 and len(all_marks) > 300  # plenty to find
    config = settings.config_dir("learner")
    published = config / "framework0-academy" / "course" / "course.yaml"
    assert published.is_file()  # the hub's learners check with it (f0 serve --hub)
    outbound = Path(settings.exchange) / COURSE_ID / "outbound"  # what release hands out
    assert (outbound / MODULE.id / MODULE.notebook).is_file()
    places = [(config, all_marks), (outbound, all_marks)]
    places += [(home(names[who]), suite_marks) for who in ("ada", "alan", "kat", "rad", "mae")]
    found, scanned = [], 0
    for folder, marks in places:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            text = path.read_bytes()[: 4 * 2**20].decode("utf-8", "replace")
            scanned += 1
            found += [(str(path), line) for line in marks if line in text]
    assert scanned > 10
    assert not found, found[:10]
    # the scan would see a suite handed out: one suite file, as a learner's feedback would be
    leak = COURSE.suite_files(MODULE)[0].read_text(encoding="utf-8")
    assert [line for line in suite_marks if line in leak]


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


CELL_NODE = """(gradeId) => {
    const notebook = window.jupyterapp.shell.currentWidget.content;
    const index = notebook.widgets.findIndex((cell) => {
        const meta = cell.model.getMetadata('nbgrader') || {};
        return meta.grade_id === gradeId;
    });
    if (index < 0) return false;
    notebook.activeCellIndex = index;
    return notebook.scrollToCell(notebook.widgets[index]).then(() => {
        notebook.widgets[index].node.id = 'f0-target-cell';
        return true;
    });
}"""
NOTEBOOK_OPEN = """(path) => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    return !!(w && w.context && w.context.path.endsWith(path) && w.context.isReady
              && w.content && w.content.widgets.length > 0);
}"""
SAVED = "() => !window.jupyterapp.shell.currentWidget.context.model.dirty"


BROWSER_MODULE = COURSE.module("module2")
BROWSER_LEVEL = r"""
import pathlib, yaml
path = pathlib.Path.cwd() / "course.yaml"
raw = yaml.safe_load(path.read_text())
raw["levels"] = [lv for lv in raw["levels"] if lv["id"] != "silver"]
raw["levels"].append({"id": "silver", "title": "Advanced Context Usage", "modules": [2]})
path.write_text(yaml.safe_dump(raw, sort_keys=False))
"""
RUN_CELL = """async (gradeId) => {
    const panel = window.jupyterapp.shell.currentWidget;
    const notebook = panel.content;
    const index = notebook.widgets.findIndex(
        (cell) => (cell.model.getMetadata('nbgrader') || {}).grade_id === gradeId);
    notebook.activeCellIndex = index;
    notebook.widgets[index].node.id = 'f0-ran-' + gradeId;
    await window.jupyterapp.commands.execute('notebook:run-cell');
    return index;
}"""


class Formgrader:
    """The instructor's formgrader page (the course service): one button, one success."""

    def __init__(self, page, service: str) -> None:
        self.page, self.service = page, service

    def assignments(self) -> None:
        self.page.goto(f"{self.service}/formgrader/manage_assignments")
        self.page.wait_for_selector("text=Manage Assignments", timeout=60_000)

    def press(self, row_text: str, column: str, step: str, shot: str | None = None) -> None:
        start = time.monotonic()
        row = self.page.locator("tr", has=self.page.locator(f"td >> text='{row_text}'"))
        row.first.locator(f"td.{column} a").click()
        done = self.page.locator("#success-modal, #error-modal")
        done.first.wait_for(timeout=300_000)
        said = done.first.inner_text()
        if shot:
            self.page.screenshot(path=str(ARTIFACTS / shot))
        assert self.page.locator("#success-modal").count() == 1, f"{step}: {said[-2000:]}"
        self.page.locator("#success-modal .modal-footer button").first.click()
        self.page.locator("#success-modal").wait_for(state="detached", timeout=30_000)
        TIMINGS[f"browser: formgrader {step}"] = time.monotonic() - start


class LearnerPage:
    """A learner's JupyterLab on the hub, with nbgrader's Assignment List."""

    def __init__(self, browser, url: str, name: str, password: str) -> None:
        self.url, self.name = url, name
        self.context, self.page = _login(browser, url, name, password)
        self.page.set_viewport_size({"width": 1400, "height": 900})
        self.page.wait_for_url(re.compile(r".*/user/.*/lab.*"), timeout=120_000)
        self.page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        self.item = f"#nbgrader-{COURSE_ID}-{BROWSER_MODULE.id}"

    def assignment_list(self) -> None:
        page = self.page
        tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Assignments")
        if tab.count():
            tab.first.click()
            return
        page.locator("#jp-menu-panel .lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        page.locator('li[data-command="nbgrader:open-assignment-list"]').click()

    def listed(self, which: str):
        lst = self.page.locator(f"#{which}_assignments_list > .list_item")
        return lst.filter(has_text=BROWSER_MODULE.id).first

    def fetch(self) -> None:
        self.assignment_list()
        self.listed("released").wait_for(timeout=60_000)
        self.listed("released").locator(".item_status button").click()
        self.listed("fetched").wait_for(timeout=60_000)

    def open_notebook(self) -> None:
        page, a = self.page, BROWSER_MODULE.id
        page.locator(f"#fetched_assignments_list a:text-is('{a}')").click()
        page.locator(f"{self.item}.collapse.in").wait_for(timeout=30_000)
        stem = Path(BROWSER_MODULE.notebook).stem
        page.locator(f"{self.item} .list_item a", has_text=stem).first.click()
        page.wait_for_function(NOTEBOOK_OPEN, arg=BROWSER_MODULE.notebook, timeout=60_000)

    def type_cell(self, grade_id: str, text: str) -> None:
        page = self.page
        page.evaluate(
            "() => { const n = document.getElementById('f0-target-cell'); if (n) n.id = ''; }"
        )
        assert page.evaluate(CELL_NODE, grade_id), f"no cell {grade_id}"
        page.locator("#f0-target-cell .cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(text)

    def save(self) -> None:
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(SAVED, timeout=30_000)

    def run_grade_cell(self, grade_id: str, expect: str) -> str:
        """Run an exercise's grade cell (the course's check, on the grading service) and
        return what it shows once ``expect`` appears under it."""
        self.page.evaluate(RUN_CELL, grade_id)
        output = self.page.locator(f"#f0-ran-{grade_id} .jp-OutputArea")
        output.filter(has_text=expect).wait_for(timeout=180_000)
        output.scroll_into_view_if_needed()
        return output.inner_text()

    def submit(self) -> None:
        self.assignment_list()
        self.listed("fetched").locator('.item_status button:text("Submit")').click()
        self.page.locator(f"{self.item}-submissions > .list_item").nth(1).wait_for(timeout=60_000)

    def fetch_feedback(self) -> None:
        self.assignment_list()
        self.page.locator(
            "#submitted_assignments_list .item_status button", has_text="Fetch Feedback"
        ).first.click()
        self.page.locator("#submitted_assignments_list a", has_text="view feedback").first.wait_for(
            timeout=60_000
        )

    def feedback_files(self) -> list[str]:
        """The HTML files fetch_feedback brought (read through the learner's own server)."""
        xsrf = next((c["value"] for c in self.context.cookies() if c["name"] == "_xsrf"), "")
        api = f"{self.url}/user/{self.name}/api/contents/{BROWSER_MODULE.id}/feedback"
        stamps = self.context.request.get(api, headers={"X-XSRFToken": xsrf}).json()["content"]
        newest = sorted(s["name"] for s in stamps)[-1]
        files = self.context.request.get(f"{api}/{newest}", headers={"X-XSRFToken": xsrf})
        return [
            f"{BROWSER_MODULE.id}/feedback/{newest}/{f['name']}" for f in files.json()["content"]
        ]

    def show(self, path: str, shot: str, at: str | None = None) -> str:
        """Open a file of the learner's in a tab of its own (scrolled to ``at``), look."""
        view = self.context.new_page()
        view.set_viewport_size({"width": 1100, "height": 900})
        view.goto(f"{self.url}/user/{self.name}/files/{path}")
        if at:
            view.get_by_text(at).first.scroll_into_view_if_needed()
        view.screenshot(path=str(ARTIFACTS / shot))
        text = view.inner_text("body")
        view.close()
        return text


def test_the_whole_loop_in_browsers(certificates, hub):
    """Issue 16's loop, every step in the page except issuing and verifying certificates:
    the instructor generates and releases module 2 in the formgrader; Radia (fully correct)
    and Mae (exercise 2.1 only), each in a browser context of their own, fetch it from the
    Assignment List, type their solutions into the page, run a grade cell (the check runs on
    the course's grading service: no suite on their side), save and submit; the instructor
    collects, autogrades each submission, generates feedback in the formgrader, issues
    certificates (`f0 issue --feedback`) and releases the feedback; the learners fetch it,
    read the per-exercise messages, and Radia opens her certificate and verifies it (`f0
    verify`, on her account). The gradebook holds exactly what they typed."""
    if sync_api is None:
        pytest.skip("playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    from test_browser import LAUNCH_ARGS

    settings, names, url, proc = hub
    a, module = BROWSER_MODULE.id, BROWSER_MODULE
    rad, mae = names["rad"], names["mae"]
    solutions = {
        grade_id: "\n".join(line for line in text.split("\n") if "SOLUTION" not in line)
        for grade_id, text in solution_sources(COURSE, module).items()
    }
    typed = {rad: solutions, mae: {"ex_2_1_solution": solutions["ex_2_1_solution"]}}
    as_instructor(settings, names, "python", "-c", BROWSER_LEVEL)  # silver: module 2 (a test's)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    service = f"{url}/services/{COURSE_ID}"
    total = time.monotonic()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            ictx, ipage = _login(browser, url, names["instructor"], settings.password)
            ipage.set_viewport_size({"width": 1400, "height": 900})
            ipage.wait_for_url(re.compile(r".*/user/.*/lab.*"), timeout=120_000)
            grader = Formgrader(ipage, service)
            grader.assignments()
            grader.press(a, "assign", "generate")
            grader.press(a, "release", "release", "loop-1-released.png")

            learners = {}
            for name in (rad, mae):
                start = time.monotonic()
                learners[name] = learner = LearnerPage(browser, url, name, settings.password)
                learner.fetch()
                learner.open_notebook()
                for grade_id, text in typed[name].items():
                    learner.type_cell(grade_id, text)
                learner.save()
                TIMINGS["browser: learner login, fetch, type, save"] = time.monotonic() - start
            start = time.monotonic()
            shown = learners[rad].run_grade_cell("hidden_2_4", "Exercise 2.4")
            assert "✓ Exercise 2.4: 5 / 5" in shown, shown
            learners[rad].page.screenshot(path=str(ARTIFACTS / "loop-2-radia-checked.png"))
            shown = learners[mae].run_grade_cell("hidden_2_2", "Exercise 2.2")
            assert "Exercise 2.2 is not started" in shown and "✓" not in shown, shown
            assert "def test_" not in shown and "@case(" not in shown
            learners[mae].page.screenshot(path=str(ARTIFACTS / "loop-2-mae-checked.png"))
            TIMINGS["browser: two checks in the page (grading service)"] = time.monotonic() - start
            for name in (rad, mae):
                learners[name].submit()
            learners[mae].page.screenshot(path=str(ARTIFACTS / "loop-3-mae-submitted.png"))

            grader.assignments()
            grader.press(a, "collect", "collect")
            ipage.goto(f"{service}/formgrader/manage_submissions/{a}")
            for name in (rad, mae):
                grader.press(name, "autograde", f"autograde {name[-3:]}")
            ipage.screenshot(path=str(ARTIFACTS / "loop-4-autograded.png"), full_page=True)
            grader.assignments()
            grader.press(a, "generate-feedback", "generate feedback")
            with timed("browser: f0 issue --feedback"):
                issued = as_instructor(settings, names, "f0", "issue", "--feedback", a).stdout
            assert f"{rad}: silver" in issued and f"{mae}: no level reached" in issued, issued
            grader.press(a, "release-feedback", "release feedback")

            start = time.monotonic()
            read = {}
            for name in (rad, mae):
                learners[name].fetch_feedback()
                files = learners[name].feedback_files()
                page = next(f for f in files if f.endswith(Path(module.notebook).stem + ".html"))
                second = module.exercises[1]  # Mae's first unsolved exercise: its message
                at = f"{second.title}: 0 / {second.points:g}" if name == mae else None
                read[name] = learners[name].show(page, f"loop-5-feedback-{name[-3:]}.png", at)
                assert ("certificate.html" in "".join(files)) == (name == rad), files
            TIMINGS["browser: fetch and read feedback"] = time.monotonic() - start
            learners[mae].page.screenshot(path=str(ARTIFACTS / "loop-5-mae-feedback-fetched.png"))
            for exercise in module.exercises:  # per exercise: her score, then what is wrong
                got = exercise.points if exercise.id == "2.1" else 0
                said = f"Exercise {exercise.id} · {exercise.title}: {got:g} / {exercise.points:g}"
                assert said in read[mae], said
            assert "✗ " in read[mae]
            assert "def test_" not in read[mae] and "@case(" not in read[mae]
            certificate = next(
                f for f in learners[rad].feedback_files() if f.endswith("certificate.html")
            )
            shown = learners[rad].show(certificate, "loop-6-radia-certificate.png")
            assert "Radia Perlman" in shown and "silver" in shown.lower(), shown[:500]
            for learner in learners.values():
                learner.context.close()
            ictx.close()
        finally:
            browser.close()
    TIMINGS["browser: whole loop"] = time.monotonic() - total

    with timed("browser: f0 verify (as the learner)"):
        ok = as_learner(settings, rad, "f0", "verify", str(home(rad) / certificate), check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: Silver"), ok.stdout + ok.stderr
    scores = gradebook_scores(settings, a)
    for name in (rad, mae):
        solved = {g.replace("_solution", "").replace("ex_", "") for g in typed[name]}
        expected = {
            e.grade_cell: float(e.points if e.id.replace(".", "_") in solved else 0)
            for e in module.exercises
        }
        assert scores[name][1] == expected, (name, scores[name])
    assert proc.poll() is None


def test_stopping_the_hub_leaves_no_process_behind(hub):
    """The last test: stopping the hub stops everything it started, as each account: every
    learner's and the instructor's server and kernels, the formgrader, the grading service and
    its Dask workers, and the proxy."""
    psutil = pytest.importorskip("psutil")
    settings, names, _, proc = hub
    accounts = set(names.values())
    started = {p.pid for p in psutil.process_iter(["username"]) if p.info["username"] in accounts}
    assert started, "no process ran as the course's accounts while the hub was up"
    proc.terminate()
    proc.wait(timeout=60)
    left: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [
            f"{p.info['username']} {p.pid}: {' '.join(p.info['cmdline'] or [])[:120]}"
            for p in psutil.process_iter(["username", "cmdline"])
            if p.info["username"] in accounts or settings.state in " ".join(p.info["cmdline"] or [])
        ]
        if not left:
            break
        time.sleep(0.5)
    assert not left, "still running after the hub stopped:\n" + "\n".join(left)
