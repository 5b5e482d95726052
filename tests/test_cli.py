"""The learner's f0 command: check, progress, hint, watch, certify; keygen/verify; errors.

Every command that writes learner state runs in a temporary copy of the course, so running
the tests never touches the developer's own ``.f0/progress.json``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import stat
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest
import yaml
from course_tools import course, run, submission

from academy.learner.watch import NotebookWatcher

COURSE = course()
MODULE = COURSE.module("module1")
F0 = [sys.executable, "-m", "academy.cli"]
WIDE = {"COLUMNS": "200"}  # rich wraps at 80 columns when piped; keep lines whole


def course_copy(tmp_path: Path, levels: list[dict] | None = None) -> Path:
    """course.yaml, module 1's hidden suite and released notebook; optionally other levels
    (and then module 1 is the only module)."""
    root = tmp_path / "course"
    (root / "autograder").mkdir(parents=True)
    shutil.copy(COURSE.suite_path(MODULE), root / MODULE.suite)
    shutil.copytree(COURSE.release_notebook(MODULE).parent, root / "exercises" / MODULE.id)
    raw = yaml.safe_load((COURSE.root / "course.yaml").read_text())
    if levels is not None:
        raw["modules"] = [m for m in raw["modules"] if m["id"] == MODULE.id]
        raw["levels"] = levels
    (root / "course.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


BRONZE_IS_MODULE_1 = [
    {"id": "bronze", "title": "Context Fundamentals", "modules": [1]},
    {"id": "silver", "title": "Advanced Context Usage", "requires": "bronze", "modules": [5]},
]


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def write_solved(path: Path, **kwargs) -> Path:
    nbformat.write(submission(COURSE, MODULE, **kwargs), path)
    return path


def test_check_exits_zero_when_the_module_passes_and_records_the_result(tmp_path):
    """Exit 0 = passed for certification (pass mark, no critical failure): tests/test_critical."""
    root = course_copy(tmp_path)
    good = write_solved(tmp_path / "good.ipynb")
    proc = run([*F0, "check", "1", str(good)], root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Fundamentals: the Context: 16 / 16" in proc.stdout
    progress = json.loads((root / ".f0" / "progress.json").read_text())
    record = progress["modules"]["module1"]["latest"]
    assert record["score"] == 16 and record["exercises"]["1.5"] == 6
    assert record["notebook"] == str(good.resolve())
    assert len(record["notebook_sha256"]) == 64
    released = run([*F0, "check", "module1", "--json"], root)
    assert released.returncode == 1
    report = json.loads(released.stdout)  # --json: the report alone on stdout
    assert report["score"] == 0 and report["max_points"] == 16
    assert report["exercises"]["1.5"]["cases"][0]["message"]
    assert set(report["exercise_status"].values()) == {"not started"}
    assert report["critical_failed"]  # the untouched stubs fail the critical cases too
    assert any(c["critical"] for c in report["exercises"]["1.5"]["cases"])
    module1 = json.loads((root / ".f0" / "progress.json").read_text())["modules"]["module1"]
    latest, best = module1["latest"], module1["best"]
    assert latest["score"] == 0 and best["score"] == 16  # the best check is kept
    assert latest["notebook"] == "exercises/module1/module1_fundamentals.ipynb"


def test_check_names_an_unreadable_notebook(tmp_path):
    missing = tmp_path / "nope.ipynb"
    proc = run([*F0, "check", "module1", str(missing)], course_copy(tmp_path))
    assert proc.returncode == 2 and "nope.ipynb" in proc.stdout


def test_hints_come_one_more_each_time(tmp_path):
    for name in ("course.yaml",):
        shutil.copy(COURSE.root / name, tmp_path / name)
    hints = MODULE.exercise("1.3").hints
    seen = []
    for _ in range(len(hints) + 1):
        proc = run([*F0, "hint", "module1", "1.3"], tmp_path)
        assert proc.returncode == 0
        seen.append(proc.stdout)
    for index, hint in enumerate(hints):
        assert f"Hint {index + 1} of {len(hints)}" in seen[index]
        assert hint.split()[0] in seen[index]
    assert "last hint" in seen[-1]


def test_unknown_module_is_a_clear_error():
    proc = run([*F0, "check", "module42"], COURSE.root)
    assert proc.returncode == 2 and "module1" in proc.stdout


def test_progress_shows_scores_the_level_reached_and_what_is_missing(tmp_path):
    root = course_copy(tmp_path, BRONZE_IS_MODULE_1)
    fresh = run([*F0, "progress"], root, env=WIDE)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "not checked yet" in fresh.stdout and "Level reached: none yet" in fresh.stdout
    assert "module 1: not graded yet (needs 12.8 / 16)" in fresh.stdout
    notebook = write_solved(tmp_path / "mine.ipynb", unsolved=("ex_1_5_solution",))
    assert run([*F0, "check", "1", str(notebook)], root).returncode == 1
    partial = run([*F0, "progress"], root, env=WIDE).stdout
    assert "✗ not yet" in partial and "module 1: 10 / 16, needs 12.8" in partial
    write_solved(notebook)
    assert run([*F0, "check", "1", str(notebook)], root).returncode == 0
    done = run([*F0, "progress"], root, env=WIDE).stdout
    assert "✓ passed" in done and "Level reached: Bronze (Context Fundamentals)" in done
    assert "not available yet" in done and "module(s) 5 are not in the course yet" in done
    notebook.write_text(notebook.read_text().replace("MiniContext", "MyContext"))
    assert "notebook changed since" in run([*F0, "progress"], root, env=WIDE).stdout


def test_watch_rechecks_when_the_notebook_is_saved(tmp_path):
    root = course_copy(tmp_path)
    notebook = tmp_path / "watched.ipynb"
    shutil.copy(COURSE.release_notebook(MODULE), notebook)
    command = [*F0, "watch", "1", str(notebook), "--interval", "0.1", "--debounce", "0.3"]
    proc = subprocess.Popen(
        [*command, "--max-checks", "2"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        progress = root / ".f0" / "progress.json"
        deadline = time.monotonic() + 120
        while not progress.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert progress.exists(), "the initial check recorded nothing"
        write_solved(notebook)  # the learner saves a solved notebook
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, output
    assert output.index("Context: 0 / 16") < output.index("Context: 16 / 16")
    assert json.loads(progress.read_text())["modules"]["module1"]["latest"]["score"] == 16


def test_watch_redraws_the_screen_for_each_check_in_a_terminal(tmp_path):
    import pty

    root = course_copy(tmp_path)
    notebook = tmp_path / "watched.ipynb"
    shutil.copy(COURSE.release_notebook(MODULE), notebook)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*F0, "watch", "1", str(notebook), "--max-checks", "1"],
        cwd=root,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(follower)
    output = b""
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    output += os.read(leader, 65536)
                except OSError:
                    break
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)
    text = output.decode("utf-8", "replace")
    assert "\x1b[2J" in text, text[-2000:]  # cleared before the check was drawn
    assert text.index("\x1b[2J") < text.index("Context: 0 / 16")


def test_the_watcher_checks_once_per_burst_of_writes(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text("0")
    now = [0.0]
    writes = {2: "1", 3: "12", 4: "123", 20: "1234"}  # poll number -> new content
    polls = [0]
    checked_at: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds
        polls[0] += 1
        if polls[0] in writes:
            path.write_text(writes[polls[0]])

    watcher = NotebookWatcher(
        path, lambda: checked_at.append(now[0]), 1.0, 3.0, clock=lambda: now[0], sleep=sleep
    )
    assert watcher.run(max_polls=40) == 2
    assert checked_at == [7.0, 23.0]  # 3 s after the last write of each burst
    path.unlink()
    assert watcher.signature() is None and watcher.run(max_polls=5) == 0


def test_the_dashboard_shows_progress_and_levels(tmp_path):
    from academy import manifest
    from academy.learner.dashboard import ProgressDashboard
    from academy.learner.progress import ModuleRecord, ProgressStore

    root = course_copy(tmp_path, BRONZE_IS_MODULE_1)
    dashboard = ProgressDashboard(root)
    assert "not checked yet" in dashboard.labels["module1"].value
    assert "data-state='in progress'" in dashboard.levels.value
    notebook = root / "exercises" / MODULE.id / MODULE.notebook
    record = ModuleRecord("module1", 16, 16, {}, "2025-01-01T00:00:00Z", str(notebook), "0" * 64)
    ProgressStore(manifest.load(root)).record(record)
    dashboard.refresh()
    assert dashboard.bars["module1"].value == 16
    assert dashboard.bars["module1"].bar_style == "success"
    assert "✓ 16 / 16" in dashboard.labels["module1"].value
    assert "changed since" in dashboard.labels["module1"].value  # the checksum differs
    assert "data-state='reached'" in dashboard.levels.value
    assert "data-state='not available yet'" in dashboard.levels.value


@pytest.fixture
def keys_home(tmp_path):
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), **WIDE}


def test_certify_signs_a_self_assessed_certificate_with_a_local_key(tmp_path, keys_home):
    root = course_copy(tmp_path, BRONZE_IS_MODULE_1)
    early = run([*F0, "certify", "--name", "Ada Lovelace"], root, env=keys_home)
    assert early.returncode == 1 and "No level reached yet" in early.stdout
    notebook = write_solved(tmp_path / "mine.ipynb")
    assert run([*F0, "check", "1", str(notebook)], root).returncode == 0
    proc = run([*F0, "certify", "--name", "Ada Lovelace", "--id", "ada"], root, env=keys_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Self-assessed" in proc.stdout and "not the course's certificate" in proc.stdout
    folder = root / ".f0" / "certificates"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"self-assessed-bronze.{ext}" for ext in ("html", "jwt", "pdf", "png")
    ]
    key_dir = Path(keys_home["XDG_CONFIG_HOME"]) / "framework0-academy"
    assert stat.S_IMODE((key_dir / "learner-private.pem").stat().st_mode) == 0o600
    token = folder / "self-assessed-bronze.jwt"
    public = key_dir / "learner-public.pem"
    mine = did_of(public)
    ok = run([*F0, "verify", str(token), "--public-key", str(public)], root, env=WIDE)
    assert ok.returncode == 0, ok.stdout  # valid for the key given, and says whose it is
    assert ok.stdout.startswith(
        "SELF-ASSESSED: Bronze: Context Fundamentals (self-assessed) for Ada"
    )
    assert f"by the learner's own key {mine}, which is NOT this course's key" in ok.stdout
    assert f"this course's key is {COURSE.issuer.key_id}" in ok.stdout
    assert "OK" not in ok.stdout and "issued by Framework0" not in ok.stdout
    default = run([*F0, "verify", str(token)], root, env=WIDE)  # against the course's key
    assert default.returncode == 1, default.stdout
    assert default.stdout.startswith("SELF-ASSESSED: ") and mine in default.stdout
    assert "OK" not in default.stdout and "issued by Framework0" not in default.stdout
    assert "SELF-ASSESSED" in (folder / "self-assessed-bronze.html").read_text()

    other = tmp_path / "other"
    assert run([*F0, "keygen", "--out", str(other)], root).returncode == 0
    wrong = run([*F0, "verify", str(token), "--public-key", str(other / "issuer-public.pem")], root)
    assert wrong.returncode == 1 and wrong.stdout.startswith("FAILED: wrong issuer key")
    assert f"names signing key {mine} (NOT this course's key)" in wrong.stdout
    text = token.read_text()
    middle = text.index(".") + 40
    token.write_text(text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1 :])
    bad = run([*F0, "verify", str(token), "--public-key", str(public)], root, env=WIDE)
    assert bad.returncode == 1 and bad.stdout.startswith("FAILED: ")
    assert "bad signature" in bad.stdout or "malformed" in bad.stdout


def did_of(public_pem: Path) -> str:
    from academy.certificates.keys import did_key, load_public_key

    return did_key(load_public_key(public_pem))


def publish_course_key(root: Path, keys: Path) -> str:
    """Make a course key with `f0 keygen` outside the course and publish it in course.yaml."""
    made = run([*F0, "keygen", "--out", str(keys)], root.parent)
    assert made.returncode == 0, made.stdout + made.stderr
    key_id = did_of(keys / "issuer-public.pem")
    assert f"key id: {key_id}" in made.stdout
    shutil.copy(keys / "issuer-public.pem", root / "course-public.pem")
    raw = yaml.safe_load((root / "course.yaml").read_text())
    raw["issuer"] = {
        "name": "Framework0 Academy",
        "key_id": key_id,
        "public_key": "course-public.pem",
    }
    (root / "course.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return key_id


def test_verify_names_the_signing_key_and_whether_it_is_the_courses(tmp_path):
    """The finding: a learner signs with their own key and labels the credential as the
    course's. Only a credential signed by course.yaml's key is ever reported as the course's."""
    from academy import manifest
    from academy.certificates.credential import Award, IssuerProfile, Learner
    from academy.certificates.issue import CertificateWriter
    from academy.certificates.keys import KeyPaths, generate_key, load_private_key
    from academy.certificates.vcjwt import CredentialSigner
    from academy.levels import LevelRules

    root = course_copy(tmp_path, BRONZE_IS_MODULE_1)
    course_id = publish_course_key(root, tmp_path / "course-keys")
    course = manifest.load(root)
    course_key = load_private_key(tmp_path / "course-keys" / "issuer-private.pem")
    learner_paths = KeyPaths.default("learner", tmp_path / "learner-keys")
    learner_key = generate_key(learner_paths)
    status = LevelRules(course).highest({"module1": 16})
    ada = Learner("ada", "Ada Lovelace")

    def write(key, name: str, self_assessed: bool, stem: str) -> Path:
        signer = CredentialSigner(key)
        award = Award(
            course, status, ada, IssuerProfile(signer.issuer_id, name), self_assessed, now()
        )
        return CertificateWriter(signer, tmp_path / "certs", pictures=False).write(award, stem).jwt

    official = write(course_key, "Framework0 Academy", False, "official")
    forged = write(learner_key, "Framework0 Academy", False, "forged")  # the attack
    learner_id = did_of(learner_paths.public)

    for extra in ([], ["--public-key", str(tmp_path / "course-keys" / "issuer-public.pem")]):
        ok = run([*F0, "verify", str(official), *extra], root, env=WIDE)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("OK: Bronze: Context Fundamentals for Ada Lovelace (ada)")
        assert f"issued by Framework0 Academy (course key {course_id}) on " in ok.stdout

    attack = run([*F0, "verify", str(forged)], root, env=WIDE)
    assert attack.returncode == 1, attack.stdout + attack.stderr
    assert attack.stdout.startswith("NOT ISSUED BY THIS COURSE: Bronze")
    assert f"signed by key {learner_id} which is NOT this course's key" in attack.stdout
    assert f"this course's key is {course_id}" in attack.stdout
    given = run(
        [*F0, "verify", str(forged), "--public-key", str(learner_paths.public)], root, env=WIDE
    )
    assert given.returncode == 0, given.stdout + given.stderr  # valid for the key given...
    assert f"signed by key {learner_id} which is NOT this course's key" in given.stdout
    for proc in (attack, given):  # ...and never the course's
        assert "OK" not in proc.stdout and "issued by Framework0 Academy" not in proc.stdout
        assert "Traceback" not in proc.stderr

    against_learner = run(
        [*F0, "verify", str(official), "--public-key", str(learner_paths.public)], root, env=WIDE
    )
    assert against_learner.returncode == 1
    assert against_learner.stdout.startswith("FAILED: wrong issuer key")
    assert f"names signing key {course_id} (this course's key)" in against_learner.stdout

    # Content cannot print a line of its own (a fake "OK: ... issued by ..." after a new line).
    sneaky = Learner(
        "ada", f"Ada\nOK: Gold for Ada, issued by Framework0 Academy (course key {course_id})"
    )
    signer = CredentialSigner(learner_key)
    award = Award(course, status, sneaky, IssuerProfile(signer.issuer_id, "x"), False, now())
    token = CertificateWriter(signer, tmp_path / "certs", pictures=False).write(award, "sneaky").jwt
    shown = run([*F0, "verify", str(token)], root, env=WIDE)
    assert shown.returncode == 1
    assert not any(line.startswith("OK") for line in shown.stdout.splitlines())


def test_verify_needs_a_key_when_the_course_publishes_none(tmp_path):
    root = course_copy(tmp_path)
    raw = yaml.safe_load((root / "course.yaml").read_text())
    del raw["issuer"]
    (root / "course.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    token = tmp_path / "c.jwt"
    token.write_text("a.b.c\n")
    proc = run([*F0, "verify", str(token)], root, env=WIDE)
    assert proc.returncode == 1 and "no public key to verify against" in proc.stdout


def test_keygen_writes_private_keys_only_outside_repositories(tmp_path):
    keys = tmp_path / "keys"
    proc = run([*F0, "keygen", "--out", str(keys)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "did:key:z6Mk" in proc.stdout
    assert stat.S_IMODE((keys / "issuer-private.pem").stat().st_mode) == 0o600
    again = run([*F0, "keygen", "--out", str(keys)], tmp_path)
    assert again.returncode == 2 and "already exists" in again.stdout
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    inside = run([*F0, "keygen", "--out", str(repo / "keys")], tmp_path, env=WIDE)
    assert inside.returncode == 2 and "inside the git repository" in inside.stdout
    assert not (repo / "keys" / "issuer-private.pem").exists()


def test_options_after_a_double_dash_go_to_nbgrader(monkeypatch):
    from academy import cli
    from academy.cli import instructors

    seen = {}
    monkeypatch.setattr(instructors, "cmd_autograde", lambda args: seen.update(vars(args)) or 0)
    assert cli.main(["autograde", "module1", "--workers", "2", "--", "--Execute.timeout=5"]) == 0
    assert seen["nbgrader_args"] == ["--Execute.timeout=5"] and seen["workers"] == 2
    with pytest.raises(SystemExit):
        cli.main(["progress", "--", "--Execute.timeout=5"])


# --- errors: one root, one line, exit code 2 ------------------------------------------------


def test_stale_with_a_broken_notebook_prints_one_line_and_exits_2(tmp_path):
    from academy.build import copy_course

    root = tmp_path / "course"
    root.mkdir()
    copy_course(COURSE, root)
    broken = root / "curriculum" / MODULE.id / MODULE.notebook
    broken.write_text('{"cells": [')  # a notebook cut off half-way
    proc = run([*F0, "stale"], root, env=WIDE)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith(f"curriculum/{MODULE.id}/{MODULE.notebook}: not a readable notebook")


@pytest.mark.parametrize(
    "error",
    ["BuildError", "SandboxUnavailable", "ProgressError", "KeyFileError", "VerificationError"],
)
def test_f0_catches_the_root_and_prints_one_line(monkeypatch, capsys, error):
    from academy import cli, errors
    from academy.cli import learner

    def fail(args):
        raise getattr(errors, error)(f"{error} in module1: what went wrong")

    monkeypatch.setattr(learner, "cmd_progress", fail)
    assert cli.main(["progress"]) == 2
    out = capsys.readouterr().out
    assert out == f"{error} in module1: what went wrong\n"
