"""Module 8's hidden suite, exercise 8.2: Authentication, authorization, encryption. Instructor-
only: never released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
from _support import a_attempt, a_raised, a_said, a_sec, a_tool, settable_clock
from cryptography.fernet import Fernet

from academy.bridge.client import expr
from academy.grading.cases import case, check, is_a, raises

A_SECRET = "grader-secret-for-module-8-exercise-8-2-that-is-64-bytes-long!!!"
A_OTHER_SECRET = "a-different-secret-an-attacker-guessed-also-64-bytes-long-......"
A_DROP = object()


def a_claims(**changes):
    claims = {
        "sub": "alice",
        "tenant": "acme",
        "roles": ["writer"],
        "aud": "contextmaster",
        "iss": "contextmaster",
        "iat": 1000,
        "exp": 1600,
    }
    for name, value in changes.items():
        if value is A_DROP:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def a_token(claims, secret=A_SECRET, algorithm="HS256"):
    return jwt.encode(claims, secret, algorithm=algorithm)


def a_security(learner, start=1000.0, **kwargs):
    clock = settable_clock(learner, start)
    return clock, learner.SecurityManager(A_SECRET, clock=clock, **kwargs)


def a_b64(data: dict) -> str:
    text = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode()


# =========================================================================== exercise 8.2
@case(
    "8.2",
    0.5,
    "issue_token must return an HS256 JWT with exactly the claims sub, tenant, roles, aud, iss, "
    "iat = clock() and exp = iat + ttl_seconds (ValueError for bad arguments), and "
    "authenticate must turn it back into the SecurityContext",
    rules=("8.2-a", "8.2-b", "8.2-c", "8.2-d", "8.2-e"),
)
def test_8_2_issue(learner):
    _clock, security = a_security(learner)
    token = security.issue_token("alice", "acme", ["writer", "reader"], ttl_seconds=60)
    check(isinstance(token, str), f"issue_token returned a {type(token).__name__}, not a str")
    header = jwt.get_unverified_header(token)
    check(header.get("alg") == "HS256", f"the token's header was {header}")
    try:
        claims = jwt.decode(
            token,
            A_SECRET,
            algorithms=["HS256"],
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        check(False, f"the token is not signed with the secret ({type(exc).__name__})")
    want = {
        "sub": "alice",
        "tenant": "acme",
        "roles": ["writer", "reader"],
        "aud": "contextmaster",
        "iss": "contextmaster",
        "iat": 1000.0,
        "exp": 1060.0,
    }
    check(claims == want, f"at clock() = 1000.0 with ttl 60 the claims were {claims}")
    ctx = security.authenticate(token)
    check(is_a(learner, ctx, "SecurityContext"), "authenticate must return a SecurityContext")
    got = (ctx.user_id.value(), ctx.tenant_id.value(), ctx.roles.value())
    check(
        got == ("alice", "acme", ("writer", "reader")),
        f"authenticate gave user_id, tenant_id, roles = {got}; roles must be a tuple",
    )
    clock2 = settable_clock(learner, 2000.0)
    custom = learner.SecurityManager(A_SECRET, audience="reports", issuer="idp", clock=clock2)
    claims = jwt.decode(
        custom.issue_token("bob", "globex", ("admin",)),
        A_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
    )
    check(
        (claims["aud"], claims["iss"], claims["roles"], claims["exp"])
        == ("reports", "idp", ["admin"], 5600.0),
        f"with audience 'reports', issuer 'idp', roles ('admin',) and the default ttl at "
        f"clock() = 2000.0 the claims were {claims}",
    )
    bad_calls = {
        "an empty user_id": ("", "acme", ["reader"]),
        "tenant id 'acme\\n'": ("alice", "acme\n", ["reader"]),
        "no roles": ("alice", "acme", []),
        "the unknown role 'root'": ("alice", "acme", ["reader", "root"]),
        "ttl_seconds 0": ("alice", "acme", ["reader"], 0),
        "ttl_seconds -5": ("alice", "acme", ["reader"], -5),
        "ttl_seconds True": ("alice", "acme", ["reader"], True),
    }
    for what, args in bad_calls.items():
        out = a_attempt(learner, security, "issue_token", *args)
        check(a_raised(out, "ValueError"), f"issue_token with {what}: {a_said(out)}")
    short = security.issue_token("alice", "acme", ["reader"], ttl_seconds=0.5)
    claims = jwt.decode(
        short,
        A_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
    )
    check(
        claims["exp"] == claims["iat"] + 0.5,
        f"ttl_seconds 0.5 is above 0 and must give exp = iat + 0.5; the claims were {claims}",
    )
    construct = a_tool(learner, "a_construct")
    for what, secret, want in [
        ("a str of 32 ASCII bytes", "s" * 32, "ok"),
        ("bytes of length 32", expr("b's' * 32"), "ok"),
        ("a str of 16 'é' (32 bytes in UTF-8)", "é" * 16, "ok"),
        ("a str of 31 ASCII bytes", "s" * 31, "refused"),
        ("bytes of length 31", expr("b's' * 31"), "refused"),
        ("a str of 15 'é' and one 'a' (31 bytes in UTF-8)", "é" * 15 + "a", "refused"),
    ]:
        got = construct(learner.SecurityManager, [secret], {})
        check(
            (got == "ok") == (want == "ok"),
            f"SecurityManager(secret) with {what}: it "
            f"{'was accepted' if got == 'ok' else 'raised ' + got}; the secret must be "
            "accepted from 32 bytes (of UTF-8 for a str) and refused below",
        )


@case(
    "8.2",
    0.75,
    "authenticate must raise AuthenticationError for forged tokens: another secret, alg none, "
    "another algorithm (HS384/HS512), an edited payload, a missing signature, garbage and "
    "non-str tokens",
    rules=("8.2-e", "8.2-f", "8.2-g"),
    critical=True,
)
def test_8_2_forgery(learner):
    _clock, security = a_security(learner)
    genuine = security.issue_token("alice", "acme", ["reader"], ttl_seconds=600)
    header, payload, signature = genuine.split(".")
    promoted = a_b64(a_claims(roles=["admin"], iat=1000.0, exp=1600.0))
    attacks = {
        "a token signed with another secret": a_token(a_claims(), A_OTHER_SECRET),
        "an alg 'none' token": jwt.encode(a_claims(roles=["admin"]), None, algorithm="none"),
        "an HS384 token (right secret)": a_token(a_claims(), algorithm="HS384"),
        "an HS512 token (right secret)": a_token(a_claims(), algorithm="HS512"),
        "a genuine token whose payload was edited to roles admin": (
            f"{header}.{promoted}.{signature}"
        ),
        "a genuine token without its signature": f"{header}.{payload}.",
        "the empty string": "",
        "'not-a-token'": "not-a-token",
        "'a.b.c'": "a.b.c",
        "None": None,
        "the int 12345": 12345,
        "a list": [genuine],
        "the genuine token as bytes": learner.make(expr(f"{genuine!r}.encode()")),
    }
    for what, token in attacks.items():
        out = a_attempt(learner, security, "authenticate", token)
        check(
            a_raised(out, "AuthenticationError"),
            f"authenticate of {what} must raise AuthenticationError; {a_said(out)}",
        )
    ctx = security.authenticate(genuine)
    check(
        ctx.user_id.value() == "alice",
        "the genuine token stopped authenticating after the attacks",
    )


@case(
    "8.2",
    0.75,
    "Token expiry must be judged with the manager's clock only: valid while clock() < exp, "
    "expired from exp on, whatever the real time is (PyJWT's own exp, iat and nbf checks use "
    "the real time); an exp that is not a number is an AuthenticationError; iat must be "
    "present, but its value is not checked",
    rules=("8.2-e", "8.2-h", "8.2-i"),
    critical=True,
)
def test_8_2_expiry(learner):
    clock, security = a_security(learner)
    token = security.issue_token("alice", "acme", ["reader"], ttl_seconds=60)
    plan = [
        (1000.0, "ok"),
        (1059.5, "ok"),
        (1060.0, "expired"),
        (5000.0, "expired"),
        (1030.0, "ok"),
    ]
    crafted = a_token(a_claims())
    plan2 = [(1599.0, "ok"), (1600.0, "expired"), (1600.5, "expired")]
    calls = [[t, security, "authenticate", [token]] for t, _ in plan]
    calls += [[t, security, "authenticate", [crafted]] for t, _ in plan2]
    outs = a_tool(learner, "a_batch")(clock, calls)
    got = [
        "ok"
        if "returned" in o
        else ("expired" if a_raised(o, "AuthenticationError") else o["raised"])
        for o in outs
    ]
    want = [w for _, w in plan + plan2]
    check(
        got == want,
        f"a token with exp 1060 checked at clock() = {[t for t, _ in plan]} and one with exp "
        f"1600 at {[t for t, _ in plan2]} gave {got}; expected {want}",
    )
    future = settable_clock(learner, 4_000_000_000.0)
    late = learner.SecurityManager(A_SECRET, clock=future)
    out = a_attempt(learner, late, "authenticate", late.issue_token("alice", "acme", ["reader"]))
    check(
        "returned" in out,
        "with clock() in the year 2096, a token issued a moment ago was refused: the real "
        f"time decided ({a_said(out)}); turn off PyJWT's verify_iat, verify_exp and verify_nbf",
    )
    now = time.time()
    clock.now = now + 100_000.0
    out = a_attempt(learner, security, "authenticate", a_token(a_claims(iat=now, exp=now + 3600)))
    check(
        a_raised(out, "AuthenticationError"),
        "a token whose exp is an hour after the real time was accepted although clock() was "
        f"past its exp: expiry must be judged with clock(); {a_said(out)}",
    )
    clock.now = 1000.0
    for iat in ("yesterday", 9_999_999_999):
        out = a_attempt(learner, security, "authenticate", a_token(a_claims(iat=iat)))
        check(
            "returned" in out,
            f"a valid token with iat = {iat!r} was refused: iat must be present, but its value "
            f"is not checked; {a_said(out)}",
        )
    out = a_attempt(learner, security, "authenticate", a_token(a_claims(nbf=9_999_999_999)))
    check(
        "returned" in out,
        "a valid token with an extra nbf claim far after the real time was refused: the real "
        f"time must never matter (verify_nbf off); {a_said(out)}",
    )
    for exp in ("1600", True, None):
        out = a_attempt(learner, security, "authenticate", a_token(a_claims(exp=exp)))
        check(
            a_raised(out, "AuthenticationError"),
            f"a token with exp = {exp!r} must raise AuthenticationError; {a_said(out)}",
        )


@case(
    "8.2",
    0.75,
    "authenticate must check the audience and issuer, require all seven claims, and reject "
    "unknown or malformed roles, an empty or non-str sub and an invalid tenant id "
    "(AuthenticationError)",
    rules=("8.2-e", "8.2-g", "8.2-j"),
    critical=True,
)
def test_8_2_claims(learner):
    _clock, security = a_security(learner)
    ok = security.authenticate(a_token(a_claims(roles=["reader", "admin"])))
    check(
        ok.roles.value() == ("reader", "admin"),
        "a valid token made with PyJWT was not accepted with its roles",
    )
    bad = {
        "audience 'billing'": a_claims(aud="billing"),
        "issuer 'someone-else'": a_claims(iss="someone-else"),
        "roles ['root']": a_claims(roles=["root"]),
        "roles ['reader', 'root']": a_claims(roles=["reader", "root"]),
        "roles []": a_claims(roles=[]),
        "roles 'admin' (a str)": a_claims(roles="admin"),
        "roles [1]": a_claims(roles=[1]),
        "sub ''": a_claims(sub=""),
        "sub 42": a_claims(sub=42),
        "tenant 'acme/x'": a_claims(tenant="acme/x"),
        "tenant 7": a_claims(tenant=7),
    }
    for name in ("sub", "tenant", "roles", "aud", "iss", "iat", "exp"):
        bad[f"no {name} claim"] = a_claims(**{name: A_DROP})
    for what, claims in bad.items():
        out = a_attempt(learner, security, "authenticate", a_token(claims))
        check(
            a_raised(out, "AuthenticationError"),
            f"a correctly signed token with {what} must raise AuthenticationError; {a_said(out)}",
        )
    clock2 = settable_clock(learner, 1000.0)
    reports = learner.SecurityManager(A_SECRET, audience="reports", issuer="idp", clock=clock2)
    out = a_attempt(learner, reports, "authenticate", a_token(a_claims()))
    check(
        a_raised(out, "AuthenticationError"),
        f"a manager with audience 'reports' accepted a token for 'contextmaster'; {a_said(out)}",
    )
    out = a_attempt(learner, reports, "authenticate", a_token(a_claims(aud="reports", iss="idp")))
    check("returned" in out, f"its own audience and issuer were refused; {a_said(out)}")


@case(
    "8.2",
    0.5,
    "authorize must allow an action only inside the caller's own tenant and only when one of "
    "its roles grants it (reader: read; writer: read, write; admin: all); unknown roles grant "
    "nothing; an unknown action is a ValueError",
    rules=("8.2-k", "8.2-l", "8.2-m"),
    critical=True,
)
def test_8_2_authorize(learner):
    _clock, security = a_security(learner)
    table = [
        (["reader"], {"read"}),
        (["writer"], {"read", "write"}),
        (["admin"], {"read", "write", "admin"}),
        (["reader", "writer"], {"read", "write"}),
        (["superuser"], set()),
        (["superuser", "reader"], {"read"}),
    ]
    calls = []
    for roles, _ in table:
        ctx = a_sec(learner, "u", "acme", roles)
        calls += [
            [None, security, "authorize", [ctx, a, "acme"]] for a in ("read", "write", "admin")
        ]
    outs = a_tool(learner, "a_batch")(settable_clock(learner), calls)
    for row, (roles, allowed) in enumerate(table):
        for col, action in enumerate(("read", "write", "admin")):
            out = outs[row * 3 + col]
            want = "ok" if action in allowed else "AuthorizationError"
            got = "ok" if out == {"returned": None} else out.get("raised", out.get("returned"))
            check(
                got == want or (want != "ok" and a_raised(out, want)),
                f"authorize(roles {roles}, {action!r}, own tenant) must "
                f"{'return None' if want == 'ok' else 'raise AuthorizationError'}; "
                f"{a_said(out)}",
            )
    admin = a_sec(learner, "root", "acme", ["admin"])
    for what, args in {
        "an acme admin acting in globex": (admin, "read", "globex"),
        "a globex admin acting in acme": (
            a_sec(learner, "gadmin", "globex", ["admin"]),
            "read",
            "acme",
        ),
        "security_ctx None": (None, "read", "acme"),
    }.items():
        out = a_attempt(learner, security, "authorize", *args)
        check(a_raised(out, "AuthorizationError"), f"authorize for {what}: {a_said(out)}")
    for action in ("delete", "READ"):
        out = a_attempt(learner, security, "authorize", admin, action, "globex")
        check(
            a_raised(out, "ValueError"),
            f"authorize with the unknown action {action!r} must raise ValueError (before the "
            f"tenant is checked); {a_said(out)}",
        )


@case(
    "8.2",
    0.75,
    "encrypt must return a Fernet token (str) of the value's compact UTF-8 JSON made with the "
    "encryption key, "
    "different every call and never showing the plaintext; decrypt must round-trip, and raise "
    "TamperedDataError for changed, foreign or garbage tokens (TypeError for non-str); "
    "json.dumps's errors for non-JSON values propagate from encrypt",
    rules=("8.2-n", "8.2-o", "8.2-p", "8.2-q", "8.2-r"),
    critical=True,
)
def test_8_2_encryption(learner):
    key = Fernet.generate_key().decode()
    _clock, security = a_security(learner, encryption_key=key)
    values = [
        {"card": "4111 1111 1111 1111", "cvv": 123},
        "plain-secret-text",
        42,
        [1, 2.5, True, None],
        {"name": "Zoë ✓"},
        None,
    ]
    tokens = []
    for value in values:
        token = security.encrypt(value)
        check(isinstance(token, str), f"encrypt({value!r}) returned {type(token).__name__}")
        plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if len(plaintext) >= 12:
            check(
                plaintext not in token and "4111" not in token and "secret" not in token,
                f"the ciphertext of {value!r} shows the plaintext",
            )
        check(token != security.encrypt(value), f"two encryptions of {value!r} were equal")
        try:
            held = Fernet(key).decrypt(token.encode())
            mine = json.loads(held.decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - any failure means a wrong format
            check(False, f"encrypt({value!r}) is not a Fernet token of the key ({exc!r})")
        check(mine == value, f"the ciphertext of {value!r} holds {mine!r}")
        check(
            held == plaintext.encode("utf-8"),
            f"the ciphertext of {value!r} holds the text {held[:80]!r}; expected the compact "
            f"JSON {plaintext.encode('utf-8')!r} (separators (',', ':'), ensure_ascii=False, "
            "UTF-8)",
        )
        back = security.decrypt(token)
        check(back == value, f"decrypt(encrypt({value!r})) gave {back!r}")
        tokens.append(token)
    twin = learner.SecurityManager(A_SECRET, encryption_key=key)
    check(
        twin.decrypt(tokens[0]) == values[0],
        "another manager with the same encryption_key could not decrypt",
    )
    token = tokens[0]
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    fernet = Fernet(key)
    attacks = {
        "a token with one character changed": flipped,
        "a truncated token": token[:-6],
        "a token of another key": learner.SecurityManager(A_SECRET).encrypt(values[0]),
        "'garbage'": "garbage",
        "the empty string": "",
        "a token of the right key whose plaintext is not JSON": fernet.encrypt(
            b"not json"
        ).decode(),
        "a token of the right key whose plaintext is not UTF-8": fernet.encrypt(
            b"\xff\xfe"
        ).decode(),
    }
    for what, bad in attacks.items():
        out = a_attempt(learner, security, "decrypt", bad)
        check(
            a_raised(out, "TamperedDataError"),
            f"decrypt of {what} must raise TamperedDataError; {a_said(out)}",
        )
    for bad in (None, 42):
        raises(lambda bad=bad: security.decrypt(bad), "TypeError", f"decrypt({bad!r})")
    for bad, error in ((expr("{1, 2}"), "TypeError"), (float("nan"), "ValueError")):
        shown = "a Python set" if error == "TypeError" else "NaN (allow_nan=False)"
        raises(
            lambda bad=bad: security.encrypt(bad),
            error,
            f"encrypt of {shown} must let json.dumps's {error} propagate",
        )
