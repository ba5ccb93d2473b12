"""Shared fixtures: a working folder with a params.yaml, as the stages expect.

Under pytest-xdist (``-n 2``: CI's slow tests) the cores are shared between the
workers: each worker's torch, and the stages its tests run, use its share of threads
(two processes of two threads each on two cores run slower than one alone)."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import pytest
import yaml

from dscl.methods import METHODS

REPO = Path(__file__).resolve().parents[1]

# the threads each test process may use: its share of the cores under pytest-xdist, else
# the repository's own setting
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
THREADS = max(1, len(os.sched_getaffinity(0)) // WORKERS) if WORKERS else None


def pytest_configure(config):
    if THREADS is not None:
        import torch

        torch.set_num_threads(min(torch.get_num_threads(), THREADS))


@functools.cache
def _repo_params() -> dict:
    return yaml.load((REPO / "params.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def small_params() -> dict:
    """The repository's params.yaml with everything made tiny (a fresh copy each call)."""
    params = copy.deepcopy(_repo_params())
    params["features"]["image"].update(num_workers=0, batch_size=64)
    for name, method in METHODS.items():
        for cfg in params["train"][name].values():
            if method.learns == "all_layers":
                cfg.update(iterations=3, num_workers=0, batch_size=200, chunk_size=64)
            elif method.learns == "last_layer":
                cfg.update(iterations=5, batch_size=200)
    params["datasets"] = ["digits"]  # whatever the workspace's params.yaml lists now
    if THREADS is not None:
        params["numerics"]["threads"] = min(params["numerics"]["threads"], THREADS)
    params["methods"] = ["vanilla", "softmax", "dscl_last", "dscl_e2e"]  # the paper's, quick
    params["train"]["common"]["checkpoint_every"] = 2
    params["report"]["tsne"].update(max_points=150, perplexity=10)
    params["report"]["bootstrap"]["resamples"] = 200
    params["report"]["tsne"]["thumbnails"] = 10
    params["report"]["gallery"] = {"queries": 4, "k": 4, "worst": 2, "compare_queries": 2, "compare_k": 3}
    if "ablation" in params:  # the stage runs, retraining nothing (its own test trains)
        params["ablation"] = {ds: {"methods": [], "dims": []} for ds in params["ablation"]}
    return params


def dump(data) -> str:
    """``data`` as YAML (libyaml's emitter where PyYAML has it: tests write many params files)."""
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary working folder holding a small params.yaml; returns a writer."""
    monkeypatch.chdir(tmp_path)

    def write(params: dict | None = None) -> Path:
        (tmp_path / "params.yaml").write_text(dump(params or small_params()))
        return tmp_path

    write()
    return write
