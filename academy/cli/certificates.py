"""Certificate commands: ``f0 certify`` (learners), ``keygen``, ``issue`` and ``verify``."""

from __future__ import annotations

import argparse
import getpass
import json
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from academy import manifest
from academy.cli.common import console
from academy.errors import UsageError
from academy.learner.progress import ProgressStore

if TYPE_CHECKING:
    from academy.certificates.trust import Verdict
    from academy.manifest import CourseIssuer

__all__ = ["add_commands", "cmd_certify", "cmd_issue", "cmd_keygen", "cmd_verify"]


def cmd_certify(args: argparse.Namespace) -> int:
    from academy.certificates.credential import Learner
    from academy.certificates.issue import CertificateWriter, SelfAssessment
    from academy.certificates.keys import KeyPaths, generate_key, load_private_key
    from academy.certificates.vcjwt import CredentialSigner

    course = manifest.load()
    assessment = SelfAssessment(course, ProgressStore(course).records())
    best = assessment.best()
    if best is None:
        console.print("[red]No level reached yet, so there is nothing to certify.[/red]")
        upcoming = assessment.next_level()
        if upcoming is not None:
            console.print(
                f"{upcoming.level.id.title()} ({upcoming.state.value}): "
                + escape("; ".join(upcoming.missing()))
            )
        return 1
    for module_id in assessment.changed_notebooks(best):
        console.print(
            f"[yellow]{module_id}: the notebook changed since it was checked; this "
            "certificate uses the last check (re-run f0 check to update it).[/yellow]"
        )
    paths = KeyPaths.for_private(Path(args.key)) if args.key else KeyPaths.default("learner")
    if paths.private.exists():
        key = load_private_key(paths.private)
    else:
        key = generate_key(paths)
        console.print(f"Created your signing key: {escape(str(paths.private))} (keep it private)")
    who = getpass.getuser()
    signer = CredentialSigner(key)
    award = assessment.award(best, Learner(args.id or who, args.name or who), signer.issuer_id)
    out = Path(args.out) if args.out else course.root / ".f0" / "certificates"
    written = CertificateWriter(signer, out).write(award, f"self-assessed-{best.level.id}")
    console.print(
        f"[bold]Self-assessed[/bold] {best.level.id.title()} certificate "
        "(signed with your own key; it is not the course's certificate):"
    )
    for path in (written.html, written.pdf, written.png, written.jwt):
        console.print(f"  {escape(str(path))}")
    console.print(
        f"Anyone can check it: f0 verify {escape(str(written.jwt))} "
        f"--public-key {escape(str(paths.public))}"
    )
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from academy.certificates.keys import KeyPaths, did_key, generate_key

    folder = Path(args.out).expanduser() if args.out else None
    if folder is not None and folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is not a folder: give a folder for the key pair")
    paths = KeyPaths.default(args.role, folder)
    try:
        key = generate_key(paths, overwrite=args.force)
    except OSError as exc:
        where = folder if folder is not None else paths.private.parent
        raise UsageError(f"cannot write keys to {where}: {exc.strerror or exc}") from exc
    console.print(f"private key (keep secret, never commit): {escape(str(paths.private))}")
    console.print(f"public key (publish it; verifiers need it): {escape(str(paths.public))}")
    console.print(f"key id: {did_key(key.public_key())}")
    if args.role == "issuer":
        console.print(
            "To make it the course's key: copy the public key into the repository and put its "
            "path and key id in course.yaml (issuer: public_key, key_id)."
        )
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from nbgrader.api import Gradebook

    from academy.certificates.issue import CertificateIssuer, CertificateWriter, GradebookScores
    from academy.certificates.keys import KeyPaths, load_private_key
    from academy.certificates.vcjwt import CredentialSigner

    course = manifest.load()
    gradebook = Path(args.gradebook)
    if not gradebook.is_file():  # nbgrader would quietly create an empty one
        raise UsageError(f"no gradebook at {gradebook}")
    key_path = Path(args.key).expanduser() if args.key else KeyPaths.default("issuer").private
    if not key_path.is_file():
        given = f"{key_path} (--key)" if args.key else str(key_path)
        raise UsageError(
            f"no course private key at {given}: run `f0 keygen` to make one, or pass "
            "--key PATH to the course's private key"
        )
    if args.feedback and args.feedback not in {m.id for m in course.modules}:
        raise UsageError(f"--feedback {args.feedback}: not a module of this course")
    signer = CredentialSigner(load_private_key(key_path))
    issuer = CertificateIssuer(
        course,
        CertificateWriter(signer, Path(args.out)),
        issuer_name=args.issuer_name,
        valid_days=args.valid_days,
    )
    with Gradebook(f"sqlite:///{gradebook.resolve()}", course.course_id) as gb:
        students = GradebookScores(course).read(gb, args.student or ())
    report = issuer.issue(students)
    console.print(escape(report.summary()))
    console.print(f"issuer key: {signer.issuer_id}")
    if args.feedback:
        from academy.certificates.delivery import deliver_to_feedback

        feedback = gradebook.resolve().parent / "feedback"  # nbgrader's, beside the gradebook
        delivery = deliver_to_feedback(
            report, [s.learner.id for s in students], feedback, args.feedback
        )
        console.print(escape(delivery.summary()))
    return 0


def _shown(value: object) -> str:
    """Text from a credential, safe to print: rich markup escaped, and control characters
    (new lines, terminal escapes, bidi overrides) written as escapes, so the content of a
    certificate can never print a line of its own, such as a fake "OK"."""
    text = "".join(
        c if unicodedata.category(c)[0] != "C" else f"\\u{ord(c):04x}" for c in str(value)
    )
    return escape(text)


def _course_issuer(key_given: bool) -> CourseIssuer | None:
    """The course's issuer: from ``course.yaml`` at or above this folder, else the one the hub
    publishes to learners (``academy.certificates.published``)."""
    from academy.certificates.published import published_issuer
    from academy.errors import ManifestError

    try:
        root = manifest.find_course_root()
    except ManifestError:
        root = None
    if root is not None:
        return manifest.load(root).issuer
    issuer = published_issuer()
    if issuer is None and not key_given:
        raise UsageError(
            f"no course.yaml in {Path.cwd()} or any folder above it, and no course key published "
            "in the Jupyter configuration path: run f0 verify in the course's folder (or a "
            "terminal on the course's hub), or pass --public-key"
        )
    return issuer


def cmd_verify(args: argparse.Namespace) -> int:
    from academy.certificates.keys import KeyFileError, load_public_key
    from academy.certificates.trust import CertificateCheck
    from academy.errors import VerificationError

    issuer = _course_issuer(bool(args.public_key))
    path = Path(args.path)
    try:
        given = load_public_key(Path(args.public_key)) if args.public_key else None
        verdict = CertificateCheck(issuer.key() if issuer else None, given).check_file(path)
    except (VerificationError, KeyFileError) as exc:
        _print_failure(exc, path, issuer)
        return 1
    credential = verdict.verified.credential
    _print_standing(verdict, credential, issuer)
    if not verdict.accepted:
        console.print(
            "The signature is valid for the key the credential itself names, which shows who "
            "signed it, not that the course did. To check it against a key you trust, pass "
            "--public-key."
        )
    if args.json:
        print(json.dumps(credential, indent=2, ensure_ascii=False))
    return 0 if verdict.accepted else 1


def _print_failure(exc: Exception, path: Path, issuer: CourseIssuer | None) -> None:
    """FAILED and why; and which key the credential names, when that can be read."""
    from academy.certificates.page import PAGE_DIFFERS
    from academy.certificates.trust import named_signing_key

    console.print(f"[red]FAILED[/red]: {_shown(exc)}")
    try:
        # a page that differs from its (valid) credential: the line above says it all
        differs = str(exc).startswith(PAGE_DIFFERS)
        named = None if differs else named_signing_key(path.read_bytes())
    except OSError:
        named = None
    if named:
        is_ours = issuer is not None and named == issuer.key_id
        whose = "this course's key" if is_ours else "NOT this course's key"
        console.print(f"The credential names signing key {named} ({whose}).")


def _credential_summary(credential: dict[str, Any]) -> str:
    """'<achievement> for <name> (<student id>)', from the credential's subject."""
    subject = credential["credentialSubject"]
    identifiers = subject.get("identifier")
    names = {
        i.get("identityType"): i.get("identityHash")
        for i in (identifiers if isinstance(identifiers, list) else [])
        if isinstance(i, dict)
    }
    return (
        f"{_shown(subject['achievement']['name'])} for {_shown(names.get('name', '?'))} "
        f"({_shown(names.get('studentId', '?'))})"
    )


def _print_standing(
    verdict: Verdict, credential: dict[str, Any], issuer: CourseIssuer | None
) -> None:
    """OK (the course's key), SELF-ASSESSED, or NOT ISSUED BY THIS COURSE."""
    from academy.certificates.trust import Standing

    what = _credential_summary(credential)
    when = _shown(credential["validFrom"])
    signer = verdict.signing_key_id  # a did:key this process computed from the key itself
    ours = f"this course's key is {issuer.key_id}" if issuer else "course.yaml publishes none"
    if verdict.standing is Standing.COURSE and issuer is not None:
        console.print(
            f"[green]OK[/green]: {what}, issued by {_shown(issuer.name)} "
            f"(course key {signer}) on {when}"
        )
        if verdict.verified.self_assessed:
            console.print("[yellow]Its signed content is marked self-assessed.[/yellow]")
    elif verdict.standing is Standing.SELF_ASSESSED:
        console.print(
            f"[yellow]SELF-ASSESSED[/yellow]: {what}, signed on {when} by the learner's own key "
            f"{signer}, which is NOT this course's key ({ours}); it is not a certificate "
            "issued by the course."
        )
    else:
        named_issuer = credential["issuer"]
        claimed = named_issuer.get("name", "?") if isinstance(named_issuer, dict) else "?"
        console.print(
            f"[red]NOT ISSUED BY THIS COURSE[/red]: {what}, signed by key {signer} which is NOT "
            f"this course's key ({ours}). It names {_shown(repr(claimed))} as its issuer, but "
            "only a credential signed by the course's key is the course's."
        )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """certify, keygen, issue, verify."""
    certify = sub.add_parser("certify", help="a self-assessed certificate for your level")
    certify.add_argument("--name", help="your name on the certificate (default: user name)")
    certify.add_argument("--id", help="your learner id (default: user name)")
    certify.add_argument("--key", help="your private key (default: created in ~/.config)")
    certify.add_argument("--out", help="output folder (default: .f0/certificates)")
    certify.set_defaults(func=cmd_certify)

    keygen = sub.add_parser("keygen", help="make an Ed25519 signing key pair")
    keygen.add_argument("--role", choices=("issuer", "learner"), default="issuer")
    keygen.add_argument("--out", help="folder outside the repository (default: ~/.config/...)")
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(func=cmd_keygen)

    issue = sub.add_parser("issue", help="sign every student's certificate from the gradebook")
    issue.add_argument("--gradebook", default="gradebook.db")
    issue.add_argument("--key", help="the course's private key (default: ~/.config/...)")
    issue.add_argument("--out", default="certificates", help="output folder")
    issue.add_argument("--issuer-name", help="issuer name (default: course.yaml's issuer.name)")
    issue.add_argument("--valid-days", type=int, help="days until expiry (default: none)")
    issue.add_argument("--student", action="append", help="only this student (repeatable)")
    issue.add_argument(
        "--feedback",
        metavar="ASSIGNMENT",
        help="also put each certificate's page into feedback/<student>/ASSIGNMENT/ "
        "(after generate_feedback; release_feedback then hands it out)",
    )
    issue.set_defaults(func=cmd_issue)

    verify = sub.add_parser("verify", help="check a certificate's signature and content")
    verify.add_argument("path", help="the certificate: its .jwt file, or its .html page")
    verify.add_argument(
        "--public-key",
        help="check against this public key (PEM) instead of the course's (course.yaml: issuer)",
    )
    verify.add_argument("--json", action="store_true", help="print the verified credential")
    verify.set_defaults(func=cmd_verify)
