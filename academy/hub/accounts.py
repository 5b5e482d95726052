"""Local Unix accounts for the hub's people, and commands run as one of them.

The nbgrader exchange keeps learners apart with file permissions, so every person gets an
account of their own. Only names with the course's prefix (``f0-``) are ever created or
removed. Needs root (``useradd``, ``groupadd``, ``userdel``, ``runuser``).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from academy.errors import AcademyError
from academy.hub import ACCOUNT_PREFIX

__all__ = [
    "account_env",
    "deny_group",
    "ensure_account",
    "ensure_group",
    "remove_account",
    "remove_group",
    "restrict_checkout",
    "run_as",
    "unrestrict_checkout",
]


def _check_prefix(name: str) -> None:
    if not name.startswith(ACCOUNT_PREFIX):
        raise ValueError(f"refusing to manage {name!r}: not a {ACCOUNT_PREFIX}* name")


def ensure_group(name: str) -> int:
    """The gid of group ``name``, created (as a system group) when missing."""
    _check_prefix(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True)
        return grp.getgrnam(name).gr_gid


def ensure_account(name: str, comment: str = "", groups: Iterable[str] = ()) -> pwd.struct_passwd:
    """The account ``name`` with a private home (0700), created when missing; in ``groups``."""
    _check_prefix(name)
    try:
        pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group"]
        if comment:
            cmd += ["--comment", comment.replace(":", " ")]
        subprocess.run([*cmd, name], check=True)
    wanted = list(groups)
    if wanted:
        subprocess.run(["usermod", "--append", "--groups", ",".join(wanted), name], check=True)
    info = pwd.getpwnam(name)
    os.chmod(info.pw_dir, 0o700)  # learners never read each other's homes
    return info


def remove_account(name: str) -> None:
    """Stop the account's processes and remove it with its home (missing: nothing to do)."""
    _check_prefix(name)
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    subprocess.run(["pkill", "-KILL", "-U", str(uid)], check=False)
    subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
    try:
        grp.getgrnam(name)
        subprocess.run(["groupdel", name], check=False, capture_output=True)
    except KeyError:
        pass


def remove_group(name: str) -> None:
    _check_prefix(name)
    subprocess.run(["groupdel", name], check=False, capture_output=True)


def account_env(
    name: str, extra: Mapping[str, str] | None = None, bin_dir: str | None = None
) -> dict[str, str]:
    """A clean environment for ``name``: its HOME, ``bin_dir`` (a Python environment) first
    on PATH."""
    info = pwd.getpwnam(name)
    env = {
        "HOME": info.pw_dir,
        "USER": name,
        "LOGNAME": name,
        "SHELL": info.pw_shell,
        "LANG": "C.UTF-8",
        "PATH": f"{bin_dir or Path(sys.executable).parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
    }
    env.update(extra or {})
    return env


def run_as(
    name: str,
    args: list[str],
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 600,
    check: bool = True,
    bin_dir: str | None = None,
) -> subprocess.CompletedProcess:
    """Run ``args`` as account ``name`` (``runuser``, its groups), with a clean environment."""
    full_env = account_env(name, env, bin_dir)
    cwd = str(cwd or full_env["HOME"])
    cmd = ["runuser", "-u", name, "--", "env", "-i", *(f"{k}={v}" for k, v in full_env.items())]
    result = subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AccountCommandFailed(
            result.returncode, args, output=result.stdout, stderr=result.stderr
        )
    return result


class AccountCommandFailed(AcademyError, subprocess.CalledProcessError):
    """A command run as an account failed; the message ends with its error output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stderr or '')[-4000:]}"


# --- the course checkout, closed to learners -----------------------------------------------
#
# The checkout holds the hidden suites, the curriculum, the solutions and .git (their history).
# Servers run from an installed copy (deploy.ensure_runtime), so no learner needs the checkout:
# a POSIX ACL entry closes it to the learners' group without changing anyone else's access.

_ACL = "system.posix_acl_access"
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF


def _read_acl(path: Path) -> list[tuple[int, int, int]]:
    try:
        data = os.getxattr(path, _ACL, follow_symlinks=False)
    except OSError:
        mode = os.lstat(path).st_mode
        return [
            (_USER_OBJ, (mode >> 6) & 7, _UNDEFINED),
            (_GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED),
            (_OTHER, mode & 7, _UNDEFINED),
        ]
    return [struct.unpack_from("<HHI", data, 4 + 8 * i) for i in range((len(data) - 4) // 8)]


def _write_acl(path: Path, entries: list[tuple[int, int, int]]) -> None:
    named = [e for e in entries if e[0] in (_USER, _GROUP)]
    base = [e for e in entries if e[0] in (_USER_OBJ, _GROUP_OBJ, _OTHER)]
    if not named:  # back to plain mode bits
        try:
            os.removexattr(path, _ACL, follow_symlinks=False)
        except OSError:
            pass
        return
    mask = 0
    for e in [*named, *base]:
        if e[0] != _OTHER and e[0] != _USER_OBJ:
            mask |= e[1]
    full = sorted([*base, *named, (_MASK, mask, _UNDEFINED)], key=lambda e: (e[0], e[2]))
    data = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in full)
    os.setxattr(path, _ACL, data, follow_symlinks=False)


def _without(path: Path, gid: int) -> list[tuple[int, int, int]]:
    return [e for e in _read_acl(path) if e[0] != _MASK and not (e[0] == _GROUP and e[2] == gid)]


def deny_group(path: Path, gid: int) -> None:
    """Group ``gid`` gets no access at all to ``path``; everyone else keeps theirs."""
    _write_acl(path, [*_without(path, gid), (_GROUP, 0, gid)])


def restrict_checkout(checkout: Path, gid: int) -> None:
    """Close the course checkout to the learners' group ``gid``."""
    deny_group(checkout, gid)


def unrestrict_checkout(checkout: Path, gid: int) -> None:
    """Undo :func:`restrict_checkout`."""
    _write_acl(checkout, _without(checkout, gid))


def which(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed")
    return found
