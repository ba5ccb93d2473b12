"""Sharing results through a DVC remote, as the README describes: one clone runs the
pipeline and pushes; a fresh clone of it pulls and finds nothing to re-run."""

from __future__ import annotations

import shutil
import sys

import pytest
import yaml

from tests.conftest import REPO, small_params
from tests.test_pipeline import ran, sh

pytestmark = pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")


def test_push_clone_pull_reruns_nothing(tmp_path):
    origin, store, clone = tmp_path / "origin", tmp_path / "store", tmp_path / "clone"
    origin.mkdir()
    for name in ("dscl", "stages"):
        shutil.copytree(REPO / name, origin / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, origin / name)
    (origin / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc/config", origin / ".dvc/config")
    params = small_params()
    params["methods"] = ["vanilla", "dscl_last"]
    (origin / "params.yaml").write_text(yaml.safe_dump(params))
    sh(origin, "git", "init", "-q")
    sh(origin, "git", "add", "-A")
    sh(origin, "git", "commit", "-qm", "code")
    sh(origin, sys.executable, "-m", "dvc", "repro")
    # the README's steps: a default remote (here a folder), commit, push with the run cache
    sh(origin, sys.executable, "-m", "dvc", "remote", "add", "-d", "shared", str(store))
    sh(origin, "git", "add", "-A")
    sh(origin, "git", "commit", "-qm", "results")
    sh(origin, sys.executable, "-m", "dvc", "push", "--run-cache")
    assert "nothing to commit" in sh(origin, "git", "status")  # the run left git clean

    # a declared model, registered (a GTO version tag) and fetched by its artifact name
    sh(origin, "git", "tag", "-a", "digits-dscl-last@v0.1.0", "-m", "Registered digits-dscl-last version v0.1.0")
    sh(tmp_path, sys.executable, "-m", "dvc", "artifacts", "get", str(origin), "digits-dscl-last",
       "-o", str(tmp_path / "fetched"))
    assert (tmp_path / "fetched/model.pt").read_bytes() == (
        origin / "models/digits-dscl_last/model.pt").read_bytes()

    sh(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    assert not (clone / "models").exists()  # models and data are not in git
    sh(clone, sys.executable, "-m", "dvc", "pull")
    assert (clone / "models/digits-dscl_last/model.pt").is_file()
    assert "Data and pipelines are up to date" in sh(clone, sys.executable, "-m", "dvc", "status")
    assert ran(sh(clone, sys.executable, "-m", "dvc", "repro")) == set()
    assert "nothing to commit" in sh(clone, "git", "status")
