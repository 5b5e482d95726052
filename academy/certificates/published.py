"""The course's certificate key, published where learners without the course's files find it.

``f0 verify`` judges a credential against the key ``course.yaml`` publishes. On the hub,
learners have no ``course.yaml`` (their home holds their own work only), so the hub writes the
course's issuer (name and key) into the learners' Jupyter configuration folder, which every
learner's server and terminal has on ``JUPYTER_CONFIG_PATH``::

    <config dir>/framework0-academy/course-issuer.json   {"course_id", "name", "key_id"}
    <config dir>/framework0-academy/course-public.pem    the same key as a PEM file

``f0 verify`` reads it when it finds no ``course.yaml`` at or above the current folder. The
first folder of ``jupyter_config_path()`` that has one wins, and JUPYTER_CONFIG_PATH comes
first; a key a learner plants in their own ``~/.jupyter`` convinces nobody but their own
account, which could run any program anyway.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from academy.errors import KeyFileError

if TYPE_CHECKING:
    from academy.manifest import CourseIssuer

__all__ = [
    "ISSUER_FILE",
    "public_folder",
    "published_issuer",
    "write_public",
    "write_published_issuer",
]

FOLDER = "framework0-academy"
ISSUER_FILE = "course-issuer.json"
PUBLIC_PEM = "course-public.pem"


def public_folder(config_dir: Path, relative: str | Path) -> Path:
    """``config_dir / relative``, made if missing, each of its folders readable by everyone."""
    folder = config_dir / relative
    folder.mkdir(parents=True, exist_ok=True)
    for part in Path(relative).parts:
        config_dir = config_dir / part
        os.chmod(config_dir, 0o755)
    return folder


def write_public(path: Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` in one step, readable by everyone (0644) before it
    appears, whatever the umask; return ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def write_published_issuer(config_dir: Path, course_id: str, name: str, key_id: str) -> Path:
    """Write the course's issuer into ``config_dir`` (readable by everyone); return the file."""
    from cryptography.hazmat.primitives import serialization

    from academy.certificates.keys import public_key_from_did

    folder = public_folder(config_dir, FOLDER)
    pem = public_key_from_did(key_id).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    files = {
        ISSUER_FILE: json.dumps({"course_id": course_id, "name": name, "key_id": key_id}, indent=1)
        + "\n",
        PUBLIC_PEM: pem.decode("ascii"),
    }
    for file_name, text in files.items():
        write_public(folder / file_name, text.encode("utf-8"))
    return folder / ISSUER_FILE


def published_issuer(search: list[str] | None = None) -> CourseIssuer | None:
    """The course issuer published in the Jupyter configuration path, if any."""
    from academy.certificates.keys import did_key, load_public_key, public_key_from_did
    from academy.manifest import CourseIssuer

    if search is None:
        from jupyter_core.paths import jupyter_config_path

        search = jupyter_config_path()
    for folder in search:
        path = Path(folder) / FOLDER / ISSUER_FILE
        if not path.is_file():
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            name, key_id = str(raw["name"]), str(raw["key_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{path}: not a published course issuer ({exc})") from exc
        public_key_from_did(key_id)  # a did:key that is an Ed25519 key, or KeyFileError
        pem = path.with_name(PUBLIC_PEM)
        if pem.is_file() and did_key(load_public_key(pem)) != key_id:
            raise KeyFileError(f"{pem} is not the key {key_id} that {path} names")
        return CourseIssuer(name, key_id, pem)
    return None
