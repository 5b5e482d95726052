"""The course roster: one CSV row per person, instructors and learners.

Columns: ``username,first_name,last_name,email,role`` with ``role`` either ``instructor``
or ``learner``. The username is the JupyterHub user name and the local account name.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from academy.errors import AcademyError

__all__ = ["Person", "RosterError", "load_roster", "write_gradebook_csv"]

ROLES = ("instructor", "learner")
# A portable Unix user name that nbgrader's exchange can carry (it splits file names on '+').
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


class RosterError(AcademyError):
    """The roster cannot be used as it is."""


@dataclass(frozen=True)
class Person:
    username: str
    first_name: str
    last_name: str
    email: str
    role: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def load_roster(path: Path, prefix: str = "") -> list[Person]:
    """Read and check the roster: known roles, unique valid names, at least one instructor."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    people: list[Person] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        values = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        missing = {"username", "first_name", "last_name", "email", "role"} - values.keys()
        if missing:
            raise RosterError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        name, role = values["username"], values["role"].lower()
        if not USERNAME.match(name):
            raise RosterError(f"{path}:{number}: {name!r} is not a valid user name")
        if prefix and not name.startswith(prefix):
            raise RosterError(f"{path}:{number}: {name!r} does not start with {prefix!r}")
        if role not in ROLES:
            raise RosterError(f"{path}:{number}: role {role!r} is not one of {ROLES}")
        if name in seen:
            raise RosterError(f"{path}:{number}: {name!r} appears twice")
        seen.add(name)
        people.append(
            Person(name, values["first_name"], values["last_name"], values["email"], role)
        )
    if not any(p.role == "instructor" for p in people):
        raise RosterError(f"{path}: no instructor")
    return people


def write_gradebook_csv(people: list[Person], path: Path) -> Path:
    """The learners in the CSV form ``nbgrader db student import`` reads."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "first_name", "last_name", "email"])
        for p in people:
            if p.role == "learner":
                out.writerow([p.username, p.first_name, p.last_name, p.email])
    return path
