"""Open Badges 3.0 ``OpenBadgeCredential`` documents for a reached level, and back again.

``build_credential`` turns an ``Award`` (who, which level, which scores, issued by whom) into
the credential's JSON; ``CertificateView`` reads a credential back into the few facts a
certificate shows, so the HTML and PDF always show exactly what was signed.

Self-assessed credentials are marked in the signed content four ways: the achievement type
``ext:SelfAssessment``, the ``self-assessed`` tag, the achievement id and the names. A
certificate counts as the course's only when it verifies against the course's public key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from academy.errors import CertificateError
from academy.levels import LevelStatus
from academy.manifest import Course

__all__ = [
    "Award",
    "CertificateView",
    "IssuerProfile",
    "Learner",
    "ModuleLine",
    "build_credential",
    "format_time",
    "parse_time",
]

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
SELF_ASSESSED_TYPE = "ext:SelfAssessment"
SELF_ASSESSED_TAG = "self-assessed"
SELF_ASSESSED_NOTE = (
    "Self-assessed: the learner ran the course's own checks and signed this with their own "
    "key. It is not a certificate issued by the course."
)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An XML Schema dateTime as written by ``format_time`` (or with an offset)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


@dataclass(frozen=True)
class Learner:
    id: str
    name: str
    email: str | None = None


@dataclass(frozen=True)
class IssuerProfile:
    id: str  # the signing key's did:key
    name: str


@dataclass(frozen=True)
class Award:
    """A reached level, for one learner, from one issuer."""

    course: Course
    status: LevelStatus
    learner: Learner
    issuer: IssuerProfile
    self_assessed: bool
    valid_from: datetime
    valid_until: datetime | None = None
    evidence_notes: dict[str, str] | None = None  # module id -> extra narrative


def _urn(course: Course, *parts: str) -> str:
    return ":".join(["urn", course.course_id, *(quote(p, safe="") for p in parts)])


def build_credential(award: Award) -> dict[str, Any]:
    """The unsigned credential: issuer, subject, achievement, evidence, validity."""
    course, level = award.course, award.status.level
    if not award.status.reached:
        raise CertificateError(f"level {level.id} is {award.status.state.value}: no credential")
    blocked = [s.module.id for s in award.status.modules if s.critical_failed]
    if blocked:  # a reached status never has them; refuse a hand-made one all the same
        raise CertificateError(f"a critical check failed in {', '.join(blocked)}: no credential")
    suffix = " (self-assessed)" if award.self_assessed else ""
    achievement_id = _urn(course, "achievement", level.id)
    if award.self_assessed:
        achievement_id += ":self-assessed"
    criteria = (
        "Score at least the pass mark of each of these modules, with no critical check failed "
        "(a check whose failure means the component is unsafe or not what the exercise is "
        "about): "
    ) + "; ".join(
        f"module {s.module.number} ({s.module.title}): {s.pass_mark:g} of {s.module.points:g}"
        for s in award.status.modules
    )
    achievement: dict[str, Any] = {
        "id": achievement_id,
        "type": ["Achievement"],
        "achievementType": SELF_ASSESSED_TYPE if award.self_assessed else "Certificate",
        "name": f"{level.id.title()}: {level.title}{suffix}",
        "description": (
            f"{course.title}, {level.id.title()} level ({level.title})."
            + (f" {SELF_ASSESSED_NOTE}" if award.self_assessed else "")
        ),
        "criteria": {"narrative": criteria},
        "creator": {"id": _urn(course, "course"), "type": ["Profile"], "name": course.title},
        "tag": [course.course_id, level.id] + ([SELF_ASSESSED_TAG] if award.self_assessed else []),
        "resultDescription": [
            {
                "id": _urn(course, "module", s.module.id),
                "type": ["ResultDescription"],
                "name": f"Module {s.module.number}: {s.module.title}",
                "resultType": "RawScore",
                "valueMax": f"{s.module.points:g}",
                "requiredValue": f"{s.pass_mark:g}",
            }
            for s in award.status.modules
        ],
    }
    identifiers = [_identity("studentId", award.learner.id), _identity("name", award.learner.name)]
    if award.learner.email:
        identifiers.append(_identity("emailAddress", award.learner.email))
    genre = "Self-checked notebook (f0 check)" if award.self_assessed else "Autograded notebook"
    notes = award.evidence_notes or {}
    credential: dict[str, Any] = {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": f"{course.title}: {level.id.title()}, {level.title}{suffix}",
        "issuer": {"id": award.issuer.id, "type": ["Profile"], "name": award.issuer.name},
        "validFrom": format_time(award.valid_from),
        "credentialSubject": {
            "id": _urn(course, "learner", award.learner.id),
            "type": ["AchievementSubject"],
            "identifier": identifiers,
            "achievement": achievement,
            "result": [
                {
                    "type": ["Result"],
                    "resultDescription": _urn(course, "module", s.module.id),
                    "value": f"{s.score:g}",
                    "status": "Completed",
                }
                for s in award.status.modules
            ],
        },
        "evidence": [
            {
                "type": ["Evidence"],
                "name": f"Module {s.module.number}: {s.module.title}",
                "description": (
                    f"{s.score:g} / {s.module.points:g} points (pass mark {s.pass_mark:g}); "
                    "no critical check failed"
                ),
                "genre": genre,
                **({"narrative": notes[s.module.id]} if s.module.id in notes else {}),
            }
            for s in award.status.modules
        ],
    }
    if award.valid_until is not None:
        credential["validUntil"] = format_time(award.valid_until)
    return credential


def _identity(kind: str, value: str) -> dict[str, Any]:
    return {"type": "IdentityObject", "identityType": kind, "hashed": False, "identityHash": value}


@dataclass(frozen=True)
class ModuleLine:
    name: str
    score: str
    points: str
    pass_mark: str


@dataclass(frozen=True)
class CertificateView:
    """What a certificate shows, read from a credential (signed content only)."""

    course: str
    level: str  # the level id (bronze, silver, ...), from the achievement's tags
    achievement: str  # "Bronze: Context Fundamentals"
    learner: str
    learner_id: str
    issuer: str
    issuer_id: str
    issued: datetime
    modules: tuple[ModuleLine, ...]
    self_assessed: bool
    credential_id: str

    @classmethod
    def from_credential(cls, credential: dict[str, Any]) -> CertificateView:
        subject = credential["credentialSubject"]
        achievement = subject["achievement"]
        ids = {i["identityType"]: i["identityHash"] for i in subject.get("identifier", [])}
        values = {r["resultDescription"]: r["value"] for r in subject.get("result", [])}
        level = achievement["tag"][1]
        modules = tuple(
            ModuleLine(d["name"], values.get(d["id"], "?"), d["valueMax"], d["requiredValue"])
            for d in achievement.get("resultDescription", [])
        )
        return cls(
            course=achievement["creator"]["name"],
            level=level,
            achievement=achievement["name"].removesuffix(" (self-assessed)"),
            learner=ids.get("name", ""),
            learner_id=ids.get("studentId", ""),
            issuer=credential["issuer"]["name"],
            issuer_id=credential["issuer"]["id"],
            issued=parse_time(credential["validFrom"]),
            modules=modules,
            self_assessed=achievement.get("achievementType") == SELF_ASSESSED_TYPE,
            credential_id=credential["id"],
        )
