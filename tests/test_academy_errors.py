"""The course platform's one error root: every academy exception derives from AcademyError,
and the tree drawn in academy/errors.py is the real class hierarchy (like tests/test_public_api.py
does for framework0)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import academy
from academy import errors
from academy.errors import AcademyError


def academy_exceptions() -> list[type[BaseException]]:
    """Every exception class defined anywhere in the academy package."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(academy.__path__, "academy."):
        if info.name.endswith("_config"):  # a Jupyter config file (get_config()), not a module
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("academy.")
            ):
                found[value.__name__] = value
    return sorted(found.values(), key=lambda c: c.__name__)


EXCEPTIONS = academy_exceptions()


def test_the_academy_package_has_the_exceptions_we_expect():
    names = {c.__name__ for c in EXCEPTIONS}
    assert {"ManifestError", "BuildError", "KeyFileError", "VerificationError"} <= names
    assert len(EXCEPTIONS) >= 14


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: c.__name__)
def test_every_academy_exception_derives_from_academy_error(cls):
    assert issubclass(cls, AcademyError)


def drawn_tree() -> dict[str, tuple[str, set[str]]]:
    """The tree in errors.py: class name -> (drawn parent, built-in bases in parentheses)."""
    lines = errors.__doc__.splitlines()
    root = next(i for i, line in enumerate(lines) if line.strip() == "AcademyError")
    indent = len(lines[root]) - len(lines[root].lstrip())
    parents = ["AcademyError"]
    tree = {"AcademyError": ("", set())}
    for line in lines[root + 1 :]:
        match = re.match(r"^([│ ]*)[├└]── (\w+)\s*(?:\(([\w, ]+)\))?", line[indent:])
        if not match:
            break
        depth = len(match.group(1)) // 4 + 1
        name, builtins = match.group(2), match.group(3)
        del parents[depth:]
        tree[name] = (parents[depth - 1], {b.strip() for b in (builtins or "").split(",") if b})
        parents.append(name)
    return tree


def test_the_tree_draws_every_academy_exception():
    tree = drawn_tree()
    assert set(tree) == {c.__name__ for c in EXCEPTIONS}
    assert set(errors.__all__) == {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: c.__name__)
def test_the_tree_is_the_real_hierarchy(cls):
    parent, builtins = drawn_tree()[cls.__name__]
    ours = [b for b in cls.__bases__ if b.__module__.startswith("academy.")]
    theirs = {b.__name__ for b in cls.__bases__ if not b.__module__.startswith("academy.")}
    if cls is AcademyError:
        assert theirs == {"Exception"}
        return
    assert [b.__name__ for b in ours] == [parent], f"{cls.__name__}: drawn under {parent}"
    assert theirs == builtins, f"{cls.__name__}: drawn with {builtins or 'no'} built-in bases"


def test_every_error_keeps_its_old_import_path_and_builtin_base():
    from academy.bridge.sandbox import SandboxUnavailable
    from academy.build import BuildError
    from academy.certificates.keys import KeyFileError
    from academy.certificates.vcjwt import VerificationError
    from academy.cli import UsageError
    from academy.grading.cases import CaseFailed
    from academy.grading.nofollow import NotARegularFile
    from academy.learner.progress import ProgressError
    from academy.manifest import ManifestError

    assert ManifestError is errors.ManifestError and issubclass(ManifestError, ValueError)
    assert ProgressError is errors.ProgressError and issubclass(ProgressError, ValueError)
    assert BuildError is errors.BuildError and issubclass(BuildError, RuntimeError)
    assert SandboxUnavailable is errors.SandboxUnavailable
    assert issubclass(SandboxUnavailable, RuntimeError)
    assert CaseFailed is errors.CaseFailed and issubclass(CaseFailed, AssertionError)
    assert NotARegularFile is errors.NotARegularFile and issubclass(NotARegularFile, OSError)
    assert KeyFileError is errors.KeyFileError and issubclass(KeyFileError, ValueError)
    assert VerificationError is errors.VerificationError
    assert VerificationError("why").reason == "why"
    assert UsageError is errors.UsageError
