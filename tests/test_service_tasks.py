"""academy.service.tasks: what a Dask worker keeps on disk between tasks."""

from __future__ import annotations

from academy.service import tasks


def test_a_worker_keeps_a_bounded_number_of_course_versions(monkeypatch, tmp_path):
    monkeypatch.setattr(tasks, "_folders", type(tasks._folders)())
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tasks.tempfile, "tempdir", None)
    bundles = [{"course.yaml": f"version {n}\n".encode()} for n in range(tasks.KEPT_BUNDLES + 2)]
    first = tasks.course_folder(bundles[0])
    assert (first / "course.yaml").read_bytes() == b"version 0\n"
    assert tasks.course_folder(bundles[0]) == first  # written once per bundle
    folders = [tasks.course_folder(bundle) for bundle in bundles[1:]]
    kept = sorted(p for p in tmp_path.iterdir() if p.name.startswith("f0-course-"))
    assert len(kept) == tasks.KEPT_BUNDLES
    assert not first.exists() and not folders[0].exists()  # the two least recently used
    assert all(folder.is_dir() for folder in folders[1:])
    tasks._remove_course_folders()  # at the worker's exit
    assert not any(p.name.startswith("f0-course-") for p in tmp_path.iterdir())
