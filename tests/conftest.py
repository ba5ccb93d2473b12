"""Shared fixtures: a working folder with a params.yaml, as the stages expect."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def small_params() -> dict:
    """The repository's params.yaml with everything made tiny."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = copy.deepcopy(params)
    params["features"]["image"].update(num_workers=0, batch_size=64)
    for per_dataset in params["train"]["softmax"], params["train"]["dscl_e2e"]:
        for cfg in per_dataset.values():
            cfg.update(iterations=3, num_workers=0, batch_size=200, chunk_size=64)
    for cfg in params["train"]["dscl_last"].values():
        cfg.update(iterations=5, batch_size=200)
    params["train"]["common"]["checkpoint_every"] = 2
    params["report"]["tsne"].update(max_points=150, perplexity=10)
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
