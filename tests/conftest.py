"""Shared fixtures: a working folder with a params.yaml, as the stages expect."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dscl.methods import METHODS

REPO = Path(__file__).resolve().parents[1]


def small_params() -> dict:
    """The repository's params.yaml with everything made tiny."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = copy.deepcopy(params)
    params["features"]["image"].update(num_workers=0, batch_size=64)
    for name, method in METHODS.items():
        for cfg in params["train"][name].values():
            if method.learns == "all_layers":
                cfg.update(iterations=3, num_workers=0, batch_size=200, chunk_size=64)
            elif method.learns == "last_layer":
                cfg.update(iterations=5, batch_size=200)
    params["datasets"] = ["digits"]  # whatever the workspace's params.yaml lists now
    params["methods"] = ["vanilla", "softmax", "dscl_last", "dscl_e2e"]  # the paper's, quick
    params["train"]["common"]["checkpoint_every"] = 2
    params["report"]["tsne"].update(max_points=150, perplexity=10)
    params["report"]["bootstrap"]["resamples"] = 200
    params["report"]["tsne"]["thumbnails"] = 10
    params["report"]["gallery"] = {"queries": 4, "k": 4, "worst": 2, "compare_queries": 2, "compare_k": 3}
    if "ablation" in params:  # the stage runs, retraining nothing (its own test trains)
        params["ablation"] = {ds: {"methods": [], "dims": []} for ds in params["ablation"]}
    return params


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary working folder holding a small params.yaml; returns a writer."""
    monkeypatch.chdir(tmp_path)

    def write(params: dict | None = None) -> Path:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params or small_params()))
        return tmp_path

    write()
    return write
