"""One ``dvc repro`` of the small digits project for the whole session: the tests that
start from a finished run copy it instead of running the pipeline again (under
pytest-xdist they all run on one worker, which builds it once)."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import small_params


def pytest_collection_modifyitems(items):
    for item in items:  # one worker (--dist loadgroup) for the tests of the shared run
        if "digits_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("digits_run"))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A committed project (code, small params.yaml) after one ``dvc repro``: its folder.
    Tests copy it (:func:`copy_run`) rather than change it."""
    from tests.pipeline.test_pipeline import dvc, project

    root = tmp_path_factory.mktemp("digits-run")
    project(root, small_params(), files=("dvc.yaml", ".dvcignore", ".gitignore"))
    first = dvc(root, "repro")
    return root, first


def copy_run(run, to):
    """A copy of the finished run ``run`` (its git repository, DVC cache and outputs)."""
    shutil.copytree(run, to, symlinks=True)
    return to
