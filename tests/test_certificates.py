"""Certificates: level rules, keys, VC-JWT signing and verification, rendering, issuing.

The exporter test builds a real gradebook with stock nbgrader in a temporary copy of the
course (two learners of module 1, like tests/test_instructor_flow.py but smaller).
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import nbformat
import pytest
import yaml
from course_tools import course, run, submission
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from academy import manifest
from academy.build import copy_course
from academy.certificates.credential import (
    SELF_ASSESSED_TYPE,
    Award,
    CertificateView,
    IssuerProfile,
    Learner,
    build_credential,
)
from academy.certificates.issue import CertificateIssuer, CertificateWriter
from academy.certificates.keys import (
    PASSPHRASE_ENV,
    KeyFileError,
    KeyPaths,
    did_key,
    generate_key,
    load_private_key,
    load_public_key,
    public_key_from_did,
)
from academy.certificates.render import HtmlCertificate
from academy.certificates.trust import CertificateCheck, Standing, named_signing_key
from academy.certificates.vcjwt import CredentialSigner, CredentialVerifier, VerificationError
from academy.errors import SigningKeyError
from academy.levels import LevelRules, LevelState
from academy.manifest import Course, CourseIssuer, Exercise, Level, ManifestError, Module

# One xdist worker runs this whole file, so its module-scoped fixtures are built once.
pytestmark = pytest.mark.xdist_group("certificates")

COURSE = course()
MODULE1 = COURSE.module("module1")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def module(number: int, points: float = 10, pass_fraction: float = 0.8) -> Module:
    exercise = Exercise(f"{number}.1", "only exercise", f"hidden_{number}_1", points, ())
    return Module(
        f"module{number}",
        number,
        f"Title {number}",
        f"module{number}.ipynb",
        f"autograder/test_module{number}.py",
        pass_fraction,
        (exercise,),
    )


def toy_course(*levels: Level) -> Course:
    """Modules 1 and 2 exist (module 2 passes at half marks); module 3 does not exist yet."""
    levels = levels or (
        Level("bronze", "Fundamentals", (1,)),
        Level("silver", "Advanced", (2,), "bronze"),
        Level("gold", "Mastery", (3,), "silver"),
    )
    return Course(
        Path("/nonexistent"), "toy-course", "Toy Course", (module(1), module(2, 10, 0.5)), levels
    )


# --- level rules ---------------------------------------------------------------------------


def test_levels_are_reached_in_order_and_never_beyond_the_manifest():
    rules = LevelRules(toy_course())
    states = {s.level.id: s.state for s in rules.statuses({"module1": 8, "module2": 5})}
    assert states == {
        "bronze": LevelState.REACHED,
        "silver": LevelState.REACHED,
        "gold": LevelState.UNAVAILABLE,
    }
    assert rules.highest({"module1": 10, "module2": 10}).level.id == "silver"
    gold = rules.status(toy_course().levels[2], {"module1": 10, "module2": 10})
    assert gold.missing() == ["module(s) 3 are not in the course yet"]


def test_a_level_needs_every_module_of_the_levels_it_requires():
    rules = LevelRules(toy_course())
    statuses = {s.level.id: s for s in rules.statuses({"module1": 7.99, "module2": 10})}
    assert statuses["bronze"].state is LevelState.IN_PROGRESS
    assert statuses["silver"].state is LevelState.IN_PROGRESS  # module 2 passed, module 1 not
    assert statuses["silver"].missing() == ["module 1: 7.99 / 10, needs 8"]
    assert rules.module_numbers(toy_course().levels[2]) == (1, 2, 3)
    assert rules.highest({"module1": 7.99, "module2": 10}) is None
    fresh = rules.status(toy_course().levels[1], {})
    assert fresh.missing() == [
        "module 1: not graded yet (needs 8 / 10)",
        "module 2: not graded yet (needs 5 / 10)",
    ]


def test_the_pass_mark_is_inclusive_despite_float_rounding():
    real = replace(COURSE, levels=(Level("bronze", "B", (1,)),))
    assert MODULE1.pass_fraction * MODULE1.points == pytest.approx(12.8)
    assert LevelRules(real).highest({"module1": 12.8}) is not None
    assert LevelRules(real).highest({"module1": 12.79}) is None


def test_levels_that_require_each_other_are_a_named_error():
    loop = toy_course(Level("a", "A", (1,), "b"), Level("b", "B", (1,), "a"))
    with pytest.raises(ManifestError, match="cycle: a -> b -> a"):
        LevelRules(loop).statuses({})


# --- keys ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    paths = KeyPaths.default("issuer", tmp_path_factory.mktemp("home") / "framework0-academy")
    return generate_key(paths), paths


def test_keys_are_pkcs8_private_to_the_user_and_named_by_did_key(issuer):
    key, paths = issuer
    assert stat.S_IMODE(paths.private.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.private.parent.stat().st_mode) == 0o700
    assert paths.private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert paths.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert did_key(load_public_key(paths.public)) == did_key(key.public_key())
    assert did_key(key.public_key()).startswith("did:key:z6Mk")  # ed25519-pub, base58btc
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key(paths)
    with pytest.raises(KeyFileError, match="is a private key"):
        load_public_key(paths.private)


def test_keys_are_never_written_inside_a_repository(tmp_path):
    (tmp_path / ".git").mkdir()
    paths = KeyPaths.default("issuer", tmp_path / "keys")
    with pytest.raises(KeyFileError, match="inside the git repository"):
        generate_key(paths)
    assert not paths.private.exists()


def test_a_passphrase_encrypts_the_private_key(tmp_path, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    paths = KeyPaths.default("issuer", tmp_path)
    generate_key(paths)
    assert "ENCRYPTED PRIVATE KEY" in paths.private.read_text()
    load_private_key(paths.private)
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(KeyFileError, match=PASSPHRASE_ENV):
        load_private_key(paths.private)


def test_a_did_key_is_the_public_key_itself(issuer):
    key, _ = issuer
    did = did_key(key.public_key())
    assert did_key(public_key_from_did(did)) == did
    for bad in ("did:key:z6Mk", did[:-1], did + "1", did.replace("z6Mk", "z6MK"), "x", None):
        with pytest.raises(KeyFileError, match="is not an Ed25519 did:key"):
            public_key_from_did(bad)


# --- credentials ---------------------------------------------------------------------------


def award(key, self_assessed=False, name="Ada Lovelace", **dates) -> Award:
    real = replace(COURSE, levels=(Level("bronze", "Context Fundamentals", (1,)),))
    status = LevelRules(real).highest({"module1": 14})
    issuer_name = f"{name} (self-assessed)" if self_assessed else real.title
    return Award(
        real,
        status,
        Learner("ada", name, "ada@example.org"),
        IssuerProfile(did_key(key.public_key()), issuer_name),
        self_assessed,
        dates.get("valid_from", NOW),
        dates.get("valid_until"),
    )


def test_the_credential_is_an_open_badges_3_credential(issuer):
    key, _ = issuer
    credential = build_credential(award(key))
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert credential["validFrom"] == "2025-06-01T12:00:00Z"
    subject = credential["credentialSubject"]
    achievement = subject["achievement"]
    assert achievement["achievementType"] == "Certificate"
    assert "12.8 of 16" in achievement["criteria"]["narrative"]
    assert [e["description"] for e in credential["evidence"]] == [
        "14 / 16 points (pass mark 12.8); no critical check failed"
    ]
    assert subject["result"][0]["value"] == "14"
    unreached = LevelRules(award(key).course).status(award(key).course.levels[0], {})
    with pytest.raises(ValueError, match="level bronze is in progress: no credential"):
        build_credential(replace(award(key), status=unreached))


def test_sign_and_verify_round_trip(issuer):
    key, paths = issuer
    credential = build_credential(award(key))
    token = CredentialSigner(key).sign(credential)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"].startswith(did_key(key.public_key()) + "#")
    verified = CredentialVerifier(load_public_key(paths.public)).verify(token, now=NOW)
    payload = verified.credential
    assert {k: payload[k] for k in credential} == credential
    assert payload["iss"] == credential["issuer"]["id"] and payload["jti"] == credential["id"]
    assert payload["nbf"] == int(NOW.timestamp())
    assert not verified.self_assessed


def test_every_single_byte_change_fails(issuer, tmp_path):
    key, _ = issuer
    token = CredentialSigner(key).sign(build_credential(award(key)))
    original = (token + "\n").encode("ascii")
    verifier = CredentialVerifier(key.public_key())
    path = tmp_path / "c.jwt"
    path.write_bytes(original)
    verifier.verify_file(path, now=NOW)
    reasons = set()
    for index in range(len(original)):
        for flip in (0x01, 0x20):  # neighbouring character; case or punctuation change
            changed = bytearray(original)
            changed[index] ^= flip
            try:
                verifier.verify_bytes(bytes(changed), now=NOW)
            except VerificationError as exc:
                reasons.add(exc.reason.split(":")[0])
            else:
                pytest.fail(f"changing byte {index} ({chr(original[index])!r}) still verifies")
    assert {"bad signature", "malformed"} <= reasons


def test_a_wrong_key_and_a_forged_signature_fail_with_their_reason(issuer, tmp_path):
    key, _ = issuer
    other = generate_key(KeyPaths.default("other", tmp_path))
    credential = build_credential(award(key))
    token = CredentialSigner(key).sign(credential)
    with pytest.raises(VerificationError, match="^wrong issuer key: .* names signing key did:key"):
        CredentialVerifier(other.public_key()).verify(token, now=NOW)
    # A forger re-signs better scores with their own key but keeps the course's key id.
    payload = jwt.decode(token, options={"verify_signature": False})
    payload["credentialSubject"]["result"][0]["value"] = "16"
    forged = jwt.encode(payload, other, "EdDSA", headers=jwt.get_unverified_header(token))
    with pytest.raises(VerificationError, match="^bad signature"):
        CredentialVerifier(key.public_key()).verify(forged, now=NOW)
    with pytest.raises(ValueError, match="is not this key"):
        CredentialSigner(other).sign(credential)


def test_dates_and_malformed_tokens_are_named(issuer):
    key, _ = issuer
    verifier = CredentialVerifier(key.public_key())
    signer = CredentialSigner(key)
    expired = signer.sign(build_credential(award(key, valid_until=NOW + timedelta(days=1))))
    verifier.verify(expired, now=NOW)
    with pytest.raises(VerificationError, match="^expired: valid until 2025-06-02T12:00:00Z"):
        verifier.verify(expired, now=NOW + timedelta(days=2))
    with pytest.raises(VerificationError, match="^not yet valid: valid from 2025-06-01"):
        verifier.verify(signer.sign(build_credential(award(key))), now=NOW - timedelta(hours=1))
    with pytest.raises(VerificationError, match="has 3 dot-separated parts, this has 1"):
        verifier.verify("not-a-token", now=NOW)
    hs256 = jwt.encode({"a": 1}, "a secret of at least thirty-two bytes", "HS256")
    with pytest.raises(VerificationError, match="unsupported algorithm 'HS256'"):
        verifier.verify(hs256, now=NOW)


def test_self_assessed_certificates_are_marked_and_distinguishable(issuer, tmp_path):
    key, _ = issuer
    writer = CertificateWriter(CredentialSigner(key), tmp_path)
    own = writer.write(award(key, self_assessed=True), "self")
    official = writer.write(award(key), "official")
    verifier = CredentialVerifier(key.public_key())
    mine = verifier.verify_file(own.jwt, now=NOW)
    theirs = verifier.verify_file(official.jwt, now=NOW)
    assert mine.self_assessed and not theirs.self_assessed
    achievement = mine.credential["credentialSubject"]["achievement"]
    assert achievement["achievementType"] == SELF_ASSESSED_TYPE
    assert "self-assessed" in achievement["tag"] and achievement["id"].endswith(":self-assessed")
    assert "(self-assessed)" in mine.credential["name"]
    assert "SELF-ASSESSED" in own.html.read_text()
    assert "SELF-ASSESSED" not in official.html.read_text()


# --- whose certificate it is ---------------------------------------------------------------


@pytest.fixture(scope="module")
def learner_key(tmp_path_factory):
    """A learner's own key pair (as `f0 certify` makes it), never the course's."""
    paths = KeyPaths.default("learner", tmp_path_factory.mktemp("learner") / "f0")
    return generate_key(paths), paths


def signed(key, self_assessed=False, issuer_name=None) -> bytes:
    credential = build_credential(award(key, self_assessed=self_assessed))
    if issuer_name is not None:
        credential["issuer"]["name"] = issuer_name
    return (CredentialSigner(key).sign(credential) + "\n").encode("ascii")


def test_only_the_course_key_makes_a_certificate_the_courses(issuer, learner_key):
    course_key, learner = issuer[0].public_key(), learner_key[0]
    official = CertificateCheck(course_key).check_bytes(signed(issuer[0]), now=NOW)
    assert official.standing is Standing.COURSE and official.accepted
    assert official.signing_key_id == did_key(course_key) == official.course_key_id
    # The course's key given explicitly: the same verdict.
    given = CertificateCheck(course_key, course_key).check_bytes(signed(issuer[0]), now=NOW)
    assert given.standing is Standing.COURSE and given.accepted

    own = signed(learner, self_assessed=True)
    found = CertificateCheck(course_key).check_bytes(own, now=NOW)  # checked with the key it names
    assert found.standing is Standing.SELF_ASSESSED and not found.accepted
    assert found.signing_key_id == did_key(learner.public_key()) != found.course_key_id
    chosen = CertificateCheck(course_key, learner.public_key()).check_bytes(own, now=NOW)
    assert chosen.standing is Standing.SELF_ASSESSED and chosen.accepted


def test_a_learner_key_labelled_as_the_course_is_never_the_courses(issuer, learner_key):
    """The finding: a learner signs with their own key and writes the course as issuer."""
    course_key, learner = issuer[0].public_key(), learner_key[0]
    forged = signed(learner, issuer_name=COURSE.title)
    token = jwt.decode(forged.strip(), options={"verify_signature": False})
    assert token["issuer"]["name"] == COURSE.title and "self-assessed" not in str(token)
    default = CertificateCheck(course_key).check_bytes(forged, now=NOW)
    assert default.standing is Standing.OTHER_KEY and not default.accepted
    assert default.signing_key_id == did_key(learner.public_key())
    chosen = CertificateCheck(course_key, learner.public_key()).check_bytes(forged, now=NOW)
    assert chosen.standing is Standing.OTHER_KEY  # valid for that key; still not the course's
    with pytest.raises(VerificationError, match="^wrong issuer key"):
        CertificateCheck(course_key, course_key).check_bytes(forged, now=NOW)
    # Naming the course's key in the header and issuer id does not help: the signature fails.
    payload = jwt.decode(forged.strip(), options={"verify_signature": False})
    payload["issuer"]["id"] = payload["iss"] = did_key(course_key)
    header = {"kid": f"{did_key(course_key)}#x", "typ": "JWT"}
    posing = jwt.encode(payload, learner, "EdDSA", headers=header).encode("ascii")
    assert named_signing_key(posing) == did_key(course_key)
    with pytest.raises(VerificationError, match="^bad signature"):
        CertificateCheck(course_key).check_bytes(posing, now=NOW)


def test_a_changed_certificate_fails_whichever_key_it_names(issuer, learner_key):
    course_key, learner = issuer[0].public_key(), learner_key[0]
    for token in (signed(issuer[0]), signed(learner, self_assessed=True)):
        header, payload, signature = token.decode().strip().split(".")
        changed = f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}"
        with pytest.raises(VerificationError, match="^(bad signature|malformed)"):
            CertificateCheck(course_key).check_bytes(f"{changed}.{signature}".encode(), now=NOW)
    with pytest.raises(KeyFileError, match="no public key to verify against"):
        CertificateCheck(None)
    assert named_signing_key(b"not a token") is None


def test_certificate_pages_escape_names_and_come_with_pdf_and_png(issuer, tmp_path):
    key, _ = issuer
    hostile = "<script>alert(1)</script> & $x^2$"
    written = CertificateWriter(CredentialSigner(key), tmp_path).write(
        award(key, name=hostile), "../../evil name"
    )
    assert written.html.parent == tmp_path and written.html.name == "evil_name.html"
    page = written.html.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in page
    assert "f0 verify evil_name.jwt" in page and written.jwt.read_text().strip() in page
    assert "bronze" in page and "14 / 16" in page
    assert written.pdf.read_bytes().startswith(b"%PDF-")
    assert written.png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    view = CertificateView.from_credential(build_credential(award(key, name=hostile)))
    assert view.learner == hostile and view.course == COURSE.title
    assert "&lt;script&gt;" in HtmlCertificate().render(view, "t.o.k", "x.jwt")


# --- issuing from a real gradebook ---------------------------------------------------------


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory, issuer):
    """A course copy whose only module is module 1, Bronze = module 1, Silver not available."""
    root = copy_course(COURSE, tmp_path_factory.mktemp("course"))
    raw = yaml.safe_load((root / "course.yaml").read_text())
    raw["modules"] = [m for m in raw["modules"] if m["id"] == "module1"]
    raw["levels"] = [
        {"id": "bronze", "title": "Context Fundamentals", "modules": [1]},
        {"id": "silver", "title": "Advanced", "requires": "bronze", "modules": [2]},
    ]
    # The copy publishes the test's own issuer key as the course's (never the real one).
    raw["issuer"] = {
        "name": "Framework0 Academy",
        "key_id": did_key(issuer[0].public_key()),
        "public_key": "course-public.pem",
    }
    shutil.copy(issuer[1].public, root / "course-public.pem")
    (root / "course.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert run(["nbgrader", "generate_assignment", "module1", "--force"], root).returncode == 0
    learners = {
        "ada": submission(COURSE, MODULE1),
        "bob": submission(COURSE, MODULE1, unsolved=("ex_1_5_solution",)),  # 10 / 16
    }
    for student, nb in learners.items():
        folder = root / "submitted" / student / "module1"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / MODULE1.notebook)
    proc = run(
        ["nbgrader", "autograde", "module1", "--ExecuteWithinLimits.timeout=20"], root, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.update_or_create_student("ada", first_name="Ada", last_name="Lovelace")
    return root


def test_nbgrader_exporter_issues_a_certificate_per_student_who_reached_a_level(
    graded_course, issuer
):
    key, paths = issuer
    out = graded_course / "exported"
    proc = run(
        [
            "nbgrader",
            "export",
            "--exporter=academy.certificates.CertificateExporter",
            f"--CertificateExporter.key_file={paths.private}",
            f"--to={out}",
        ],
        graded_course,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        f"ada-bronze.{ext}" for ext in ("html", "jwt", "pdf", "png")
    ]
    verified = CredentialVerifier(load_public_key(paths.public)).verify_file(out / "ada-bronze.jwt")
    names = {
        i["identityType"]: i["identityHash"]
        for i in verified.credential["credentialSubject"]["identifier"]
    }
    assert names == {"studentId": "ada", "name": "Ada Lovelace"}
    assert verified.credential["evidence"][0]["description"] == (
        "16 / 16 points (pass mark 12.8); no critical check failed"
    )
    assert "bob: no level reached; bronze: module 1: 10 / 16, needs 12.8" in proc.stderr


def test_issuing_signs_only_with_the_course_key(issuer, learner_key, tmp_path):
    key, _ = issuer
    ours = replace(
        COURSE, issuer=CourseIssuer("Framework0 Academy", did_key(key.public_key()), tmp_path)
    )
    CertificateIssuer(ours, CertificateWriter(CredentialSigner(key), tmp_path))
    with pytest.raises(SigningKeyError, match="is not this course's key"):
        CertificateIssuer(ours, CertificateWriter(CredentialSigner(learner_key[0]), tmp_path))
    with pytest.raises(SigningKeyError, match="publishes no course key"):
        CertificateIssuer(
            replace(COURSE, issuer=None), CertificateWriter(CredentialSigner(key), tmp_path)
        )


def test_f0_issue_reads_the_gradebook_too(graded_course, issuer, tmp_path):
    _, paths = issuer
    f0 = [sys.executable, "-m", "academy.cli"]
    out = tmp_path / "certs"
    proc = run(
        [
            *f0,
            "issue",
            "--gradebook",
            "gradebook.db",
            "--key",
            str(paths.private),
            "--out",
            str(out),
            "--valid-days",
            "365",
        ],
        graded_course,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 certificate(s) issued, 1 student(s) without" in proc.stdout
    shown = run(
        [*f0, "verify", str(out / "ada-bronze.jwt"), "--public-key", str(paths.public), "--json"],
        graded_course,
    )
    assert shown.returncode == 0 and shown.stdout.startswith("OK: Bronze"), shown.stdout
    credential = json.loads(shown.stdout[shown.stdout.index("\n{") + 1 :])
    assert credential["validUntil"] > credential["validFrom"]
    course_id = did_key(issuer[0].public_key())
    default = run([*f0, "verify", str(out / "ada-bronze.jwt")], graded_course)
    assert default.returncode == 0, default.stdout + default.stderr
    assert f"issued by Framework0 Academy (course key {course_id})" in default.stdout
    stranger = generate_key(KeyPaths.default("stranger", tmp_path / "stranger"))
    stranger_file = tmp_path / "stranger" / "stranger-private.pem"
    refused = run(
        [*f0, "issue", "--gradebook", "gradebook.db", "--key", str(stranger_file)], graded_course
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"the signing key {did_key(stranger.public_key())} is not this course's key" in (
        refused.stdout
    )
    assert "Traceback" not in refused.stderr
    missing = run(
        [*f0, "issue", "--gradebook", "nope.db", "--key", str(paths.private)], graded_course
    )
    assert missing.returncode == 2 and "no gradebook at nope.db" in missing.stdout
    assert not (graded_course / "nope.db").exists()


def test_the_manifest_decides_what_is_available(graded_course):
    loaded = manifest.load(graded_course)
    statuses = {s.level.id: s.state for s in LevelRules(loaded).statuses({"module1": 16})}
    assert statuses == {"bronze": LevelState.REACHED, "silver": LevelState.UNAVAILABLE}


# --- the course's published key ------------------------------------------------------------


def test_the_committed_public_key_is_the_key_course_yaml_names():
    assert COURSE.issuer is not None and COURSE.issuer.name == COURSE.title
    assert COURSE.issuer.public_key.is_file(), "the course's public key must be committed"
    assert did_key(load_public_key(COURSE.issuer.public_key)) == COURSE.issuer.key_id
    assert did_key(COURSE.issuer.key()) == COURSE.issuer.key_id
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(COURSE.issuer.public_key)],
        cwd=COURSE.root,
        capture_output=True,
    )
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(COURSE.issuer.public_key)], cwd=COURSE.root
    )
    if tracked.returncode != 0 and ignored.returncode == 0:
        pytest.fail(".gitignore hides the course's public key; it must be committed")


# A PEM private key: its header line followed by base64 text (not a mention in code).
PRIVATE_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{40}")


def test_no_private_key_is_in_the_repository():
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=COURSE.root,
        capture_output=True,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    files = [COURSE.root / name for name in listed.stdout.decode().split("\0") if name]
    assert len(files) > 50
    found = [
        str(path.relative_to(COURSE.root))
        for path in files
        if path.is_file() and PRIVATE_PEM.search(path.read_bytes())
    ]
    assert not found, f"private key(s) in the repository: {found}"
    for passphrase in (None, b"secret"):  # the pattern finds real keys, plain or encrypted
        encryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        assert PRIVATE_PEM.search(b"KEY = '" + pem.replace(b"\n", b"\r\n") + b"'")


def issuer_yaml(tmp_path: Path, key_id: str, pem: bytes | None) -> Path:
    raw = yaml.safe_load((COURSE.root / "course.yaml").read_text())
    raw["issuer"] = {"name": "X", "key_id": key_id, "public_key": "keys/course-public.pem"}
    tmp_path.mkdir()
    (tmp_path / "course.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    if pem is not None:
        (tmp_path / "keys").mkdir()
        (tmp_path / "keys" / "course-public.pem").write_bytes(pem)
    return tmp_path


def test_the_manifest_refuses_a_key_file_that_is_not_the_key_id(tmp_path, issuer, learner_key):
    _, paths = issuer
    ours, theirs = did_key(issuer[0].public_key()), did_key(learner_key[0].public_key())
    loaded = manifest.load(issuer_yaml(tmp_path / "a", ours, paths.public.read_bytes()))
    assert loaded.issuer == CourseIssuer("X", ours, tmp_path / "a" / "keys/course-public.pem")
    with pytest.raises(ManifestError) as mismatch:
        manifest.load(issuer_yaml(tmp_path / "b", theirs, paths.public.read_bytes()))
    assert str(mismatch.value).count("\n") == 0
    assert f"issuer.public_key keys/course-public.pem is key {ours}, but issuer.key_id is " in (
        str(mismatch.value)
    )
    with pytest.raises(ManifestError, match="issuer.public_key: .* is a private key"):
        manifest.load(issuer_yaml(tmp_path / "c", ours, paths.private.read_bytes()))
    with pytest.raises(ManifestError, match="issuer.key_id: .* is not an Ed25519 did:key"):
        manifest.load(issuer_yaml(tmp_path / "d", ours[:-3], None))
    with pytest.raises(ManifestError, match="at issuer/key_id"):
        manifest.load(issuer_yaml(tmp_path / "e", "did:web:example.org", None))
    # A copy of course.yaml alone still loads: the key id is the key.
    alone = manifest.load(issuer_yaml(tmp_path / "f", ours, None))
    assert did_key(alone.issuer.key()) == ours


def test_a_failed_critical_check_withholds_the_certificate_and_is_listed(issuer, tmp_path):
    """f0 issue: a student at full marks everywhere but with a critical check failed in one
    module gets no certificate for a level that needs it, and the summary names the check;
    the failed checks are read from the autograded notebook's grade-cell metadata."""
    from academy.certificates.issue import StudentScores, critical_from_notebook
    from academy.grading.render import exercise_outputs
    from academy.grading.suite_runner import CaseResult, ExerciseResult

    key, _ = issuer
    ours = replace(
        COURSE, issuer=CourseIssuer("Framework0 Academy", did_key(key.public_key()), tmp_path)
    )
    module1 = ours.module("module1")
    exercise = module1.exercises[3]
    result = ExerciseResult(
        exercise,
        [
            CaseResult("t", exercise.id, exercise.points - 0.5, "ordinary check", True),
            CaseResult(
                "c", exercise.id, 0.5, "a refused set must change nothing", False, critical=True
            ),
        ],
    )
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("# grade cell")
    cell.outputs = [nbformat.from_dict(o) for o in exercise_outputs(result, [], exercise.points)]
    nb.cells.append(cell)
    graded = tmp_path / "graded.ipynb"
    nbformat.write(nb, graded)
    failed = critical_from_notebook(graded)
    assert failed == [f"{exercise.id}: a refused set must change nothing"]

    full = {m.id: m.points for m in ours.modules}
    blocked = StudentScores(Learner("s1", "Student One"), dict(full), critical={"module1": failed})
    clean = StudentScores(Learner("s2", "Student Two"), dict(full))
    out = tmp_path / "certs"
    issuer_ = CertificateIssuer(ours, CertificateWriter(CredentialSigner(key), out, pictures=False))
    report = issuer_.issue([blocked, clean])
    assert [c.learner for c in report.issued] == ["s2"]
    assert "s1" in report.skipped and "critical check" in report.skipped["s1"]
    summary = report.summary()
    assert "Critical checks failed" in summary
    assert f"s1: module1: {exercise.id}: a refused set must change nothing" in summary
