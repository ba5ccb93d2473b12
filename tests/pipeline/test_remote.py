"""Sharing results through a DVC remote, as the README describes: one clone runs the
pipeline and pushes; a fresh clone of it pulls and finds nothing to re-run."""

from __future__ import annotations

import shutil

import pytest

from tests.pipeline.conftest import copy_run
from tests.pipeline.test_pipeline import dvc, ran, sh

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed"),
]


def test_push_clone_pull_reruns_nothing(digits_run, tmp_path):
    origin, store, clone = tmp_path / "origin", tmp_path / "store", tmp_path / "clone"
    copy_run(digits_run[0], origin)  # the pipeline, run once for the session
    # the README's steps: a default remote (here a folder), commit, push with the run cache
    dvc(origin, "remote", "add", "-d", "shared", str(store))
    sh(origin, "git", "add", "-A")
    sh(origin, "git", "commit", "-qm", "results")
    dvc(origin, "push", "--run-cache")
    assert "nothing to commit" in sh(origin, "git", "status")  # the run left git clean

    # a declared model, registered (a GTO version tag) and fetched by its artifact name
    sh(
        origin,
        "git",
        "tag",
        "-a",
        "digits-dscl-last@v0.1.0",
        "-m",
        "Registered digits-dscl-last version v0.1.0",
    )
    dvc(
        tmp_path,
        "artifacts",
        "get",
        str(origin),
        "digits-dscl-last",
        "-o",
        str(tmp_path / "fetched"),
    )
    assert (tmp_path / "fetched/model.pt").read_bytes() == (
        origin / "models/digits-dscl_last/model.pt"
    ).read_bytes()

    sh(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    assert not (clone / "models").exists()  # models and data are not in git
    dvc(clone, "pull")
    assert (clone / "models/digits-dscl_last/model.pt").is_file()
    assert "Data and pipelines are up to date" in dvc(clone, "status")
    assert ran(dvc(clone, "repro")) == set()
    assert "nothing to commit" in sh(clone, "git", "status")
