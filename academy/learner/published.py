"""The course's public manifest, published where learners without the course's files find it.

On JupyterHub a learner's home holds their own fetched work only: no ``course.yaml``, no
suite, no solution. The hub writes the course's ``course.yaml`` (modules, exercises, points,
hints, the certificate key's id: nothing that grades) into the learners' Jupyter
configuration folder, which every learner's server, kernel and terminal has on
``JUPYTER_CONFIG_PATH``::

    <config dir>/framework0-academy/course/course.yaml

With the course's grading service configured (``F0_SERVICE_URL``, set by the hub for its
learners), a grade cell of a fetched notebook checks it on the service with this manifest
(``academy.learner.incell``), and so does ``f0 check`` in a learner's terminal. The first
folder of ``jupyter_config_path()`` that has one wins; a manifest a learner plants in their
own ``~/.jupyter`` only changes what their own checks show, never a grade.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from academy.certificates.published import FOLDER, public_folder, write_public

if TYPE_CHECKING:
    from academy.manifest import Course

__all__ = ["COURSE_FOLDER", "published_course", "write_published_course"]

COURSE_FOLDER = Path(FOLDER) / "course"


def write_published_course(config_dir: Path, course: Course) -> Path:
    """Copy ``course``'s ``course.yaml`` into ``config_dir`` (readable by everyone)."""
    from academy.manifest import MANIFEST_NAME

    folder = public_folder(config_dir, COURSE_FOLDER)
    return write_public(folder / MANIFEST_NAME, (course.root / MANIFEST_NAME).read_bytes())


def published_course(search: list[str] | None = None) -> Course | None:
    """The course manifest published in the Jupyter configuration path, if any."""
    from academy import manifest

    if search is None:
        from jupyter_core.paths import jupyter_config_path

        search = jupyter_config_path()
    for folder in search:
        root = Path(folder) / COURSE_FOLDER
        if (root / manifest.MANIFEST_NAME).is_file():
            return manifest.load.__wrapped__(root)  # not cached: the hub may publish anew
    return None
