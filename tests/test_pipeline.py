"""One end-to-end ``dvc repro`` of the digits pipeline in a temporary copy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, small_params

pytestmark = pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1", "PYTHONPATH": ""}


def sh(cwd, *cmd):
    res = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_dvc_repro_end_to_end(tmp_path):
    for name in ("dscl", "stages"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc/config", tmp_path / ".dvc/config")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params()))
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "commit", "-qm", "init")

    first = sh(tmp_path, sys.executable, "-m", "dvc", "repro")
    methods = ["vanilla", "softmax", "dscl_last", "dscl_e2e"]
    expected = {"prepare@digits", "features@digits", "report@digits"} | {
        f"{s}@digits-{m}" for s in ("train", "embed", "evaluate") for m in methods}
    assert ran(first) == expected
    for m in methods:
        metrics = json.loads((tmp_path / f"reports/metrics/digits/{m}.json").read_text())
        assert 0 < metrics["with_sc"]["nmi"] <= 100
        assert (tmp_path / f"reports/plots/digits/tsne_{m}.png").is_file()
    assert (tmp_path / "reports/tables/digits.md").is_file()
    assert (tmp_path / "reports/tables/digits.csv").is_file()

    assert ran(sh(tmp_path, sys.executable, "-m", "dvc", "repro")) == set()  # nothing to redo

    # every output is byte-identical when re-run (models included): the lock is unchanged
    lock = (tmp_path / "dvc.lock").read_text()
    assert ran(sh(tmp_path, sys.executable, "-m", "dvc", "repro", "--force")) == expected
    assert (tmp_path / "dvc.lock").read_text() == lock

    params = small_params()
    params["train"]["dscl_last"]["digits"]["lr"] = 0.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert ran(sh(tmp_path, sys.executable, "-m", "dvc", "repro")) == {
        "train@digits-dscl_last", "embed@digits-dscl_last", "evaluate@digits-dscl_last", "report@digits"}
