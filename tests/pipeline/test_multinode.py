"""Several machines, tested on one: the digits end-to-end train stage as two torchrun
nodes (two agents, ``nnodes: 2``, a c10d rendezvous on 127.0.0.1, gloo), and a worker
killed in the middle of a run. Local addresses only; every wait is bounded."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

import psutil
import pytest
import torch

from tests.conftest import dump, small_params
from tests.pipeline.test_pipeline import ENV, dvc, project, ran

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed"),
]

STAGE = "train@digits-dscl_e2e"
MODEL = "models/digits-dscl_e2e/model.pt"
STATE = "checkpoints/digits-dscl_e2e/state.pt"
LIMIT = 300  # seconds any one wait may take
ITERATIONS = 40  # enough that a worker killed after the first checkpoint is mid-run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def params_for(torchrun: dict | None = None) -> dict:
    params = small_params()
    params["datasets"], params["methods"] = ["digits"], ["dscl_e2e"]
    params["train"]["dscl_e2e"]["digits"].update(iterations=ITERATIONS, validate_every=10)
    params["train"]["common"]["checkpoint_every"] = 2
    if torchrun is not None:
        params["train"]["common"]["torchrun"] = torchrun
    return params


def two_nodes(port: int) -> dict:
    return {
        "standalone": False,
        "nnodes": 2,
        "nproc_per_node": 1,
        "rdzv_backend": "c10d",
        "rdzv_endpoint": f"127.0.0.1:{port}",
        "rdzv_id": f"test-{uuid.uuid4().hex[:8]}",
        "max_restarts": 0,
    }


def stage_command(root) -> str:
    """The train stage's command as DVC resolves it from params.yaml (what every node runs)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        (stage,) = [s for s in repo.index.stages if s.name == STAGE]
        return stage.cmd


def start_nodes(root) -> list[subprocess.Popen]:
    cmd = stage_command(root)
    env = {**ENV, "OMP_NUM_THREADS": "1"}
    return [
        subprocess.Popen(
            cmd,
            shell=True,
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(2)
    ]


def finish(nodes, timeout=LIMIT) -> list[tuple[int, str]]:
    out = []
    for node in nodes:
        try:
            _, err = node.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            _, err = node.communicate()
            pytest.fail(f"a node did not finish within {timeout} s:\n{err[-2000:]}")
        out.append((node.returncode, err))
    return out


def test_two_nodes_give_the_one_process_model_and_a_killed_worker_resumes(tmp_path):
    project(tmp_path, params_for())
    dvc(tmp_path, "repro", STAGE)  # the stage and what it needs, one process
    single = torch.load(tmp_path / MODEL, weights_only=True)

    # -- two nodes on this machine: the same model ----------------------------------------
    (tmp_path / "params.yaml").write_text(dump(params_for(two_nodes(free_port()))))
    (tmp_path / MODEL).unlink()
    for code, err in finish(start_nodes(tmp_path)):
        assert code == 0, err[-2000:]
    parallel = torch.load(tmp_path / MODEL, weights_only=True)
    assert parallel["record"] == single["record"]
    for k, v in single["state_dict"].items():
        assert torch.allclose(parallel["state_dict"][k], v, rtol=1e-4, atol=1e-6), k

    # -- a worker killed after a checkpoint: a one-line error, the checkpoint kept --------
    (tmp_path / "params.yaml").write_text(dump(params_for(two_nodes(free_port()))))
    (tmp_path / MODEL).unlink()
    nodes = start_nodes(tmp_path)
    deadline = time.monotonic() + LIMIT
    while not (tmp_path / STATE).is_file():  # rank 0 has saved iteration 2
        assert time.monotonic() < deadline and all(n.poll() is None for n in nodes), "no checkpoint"
        time.sleep(0.2)
    workers = [
        p
        for p in psutil.Process(nodes[1].pid).children(recursive=True)
        if "stages.train" in " ".join(p.cmdline()) and "stages.launch" not in " ".join(p.cmdline())
    ]
    assert workers, "node 1 has no worker process"
    for worker in workers:
        worker.kill()
    results = finish(nodes)
    assert all(code != 0 for code, _ in results)
    for _, err in results:  # each node says what failed in one line, with no Python traceback
        lines = [
            line for line in err.splitlines() if line.startswith("error: stages.train failed in process(es)")
        ]
        assert len(lines) == 1, err[-3000:]  # (torch's own C++ warnings may follow it)
        assert "Traceback" not in err, err[-3000:]
    assert any("the process group failed" in err for _, err in results)  # the surviving worker
    assert (tmp_path / STATE).is_file() and not (tmp_path / MODEL).exists()
    saved = torch.load(tmp_path / STATE, weights_only=True)["iteration"]
    assert 2 <= saved < ITERATIONS

    # -- the next dvc repro resumes there and ends at the uninterrupted model -------------
    (tmp_path / "params.yaml").write_text(dump(params_for()))
    out = dvc(tmp_path, "repro", STAGE)
    assert ran(out) == {STAGE}
    assert f"{saved}/{ITERATIONS}" in out  # the progress bar starts at the checkpoint, not at 0
    resumed = torch.load(tmp_path / MODEL, weights_only=True)
    for k, v in single["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][k], v, rtol=1e-4, atol=1e-6), k
