"""The chunked end-to-end update (Section 4.1 of the paper) and its data-parallel form."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from dscl.backbones import build_backbone
from dscl.backbones.network import Backbone
from dscl.objectives import make_objective
from dscl.objectives.dscl import dscl_loss
from dscl.training import (
    EmbeddingNet,
    LoopOptions,
    OptimizerConfig,
    chunked_step,
    freeze_batchnorm,
    make_optimizer,
    sample_batch,
    train_on_images,
)

DSCL = make_objective("dscl")
CPU = torch.device("cpu")


def dscl_step(model, images, labels, optimizer, chunk_size):
    return chunked_step(model, images, labels, optimizer, objective=DSCL, chunk_size=chunk_size, device=CPU)


def make_model(seed: int = 0) -> EmbeddingNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        for m in body.modules():  # non-trivial running statistics
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        backbone = Backbone(body, 8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        return EmbeddingNet(backbone, nn.Linear(8, 6))


def make_batch(n: int = 23, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 12, 12), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, 4, (n,), generator=gen) * 10 + 3
    return images, labels


def full_batch_gradients(model, images, labels):
    model.train()
    freeze_batchnorm(model)
    model.zero_grad()
    loss = dscl_loss(model(images), labels)
    loss.backward()
    return loss.item(), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("chunk_size", [1, 5, 23, 100])
def test_chunked_gradient_equals_unchunked(chunk_size):
    images, labels = make_batch()
    reference = make_model()
    ref_loss, ref_grads = full_batch_gradients(reference, images, labels)
    model = make_model()
    model.train()
    freeze_batchnorm(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keep the gradients to look at
    loss = dscl_step(model, images, labels, optimizer, chunk_size)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, ref_grads[name], rtol=1e-4, atol=1e-5), name


def test_batchnorm_statistics_stay_frozen():
    images, labels = make_batch()
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()
    freeze_batchnorm(model)
    dscl_step(model, images, labels, make_optimizer(model.parameters(), OptimizerConfig(lr=0.1)), 4)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


@pytest.mark.slow
def test_two_process_data_parallel_equals_one_process(tmp_path):
    images, labels = make_batch()
    single = make_model()
    single.train()
    freeze_batchnorm(single)
    loss = dscl_step(single, images, labels, torch.optim.SGD(single.parameters(), lr=0.5), 5)
    from tests.ddp_worker import step_worker

    out = tmp_path / "rank0.pt"
    mp.spawn(step_worker, args=(2, str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    parallel = torch.load(out, weights_only=True)
    assert parallel["loss"] == pytest.approx(loss, rel=1e-5)
    for k, v in single.state_dict().items():
        assert torch.allclose(parallel["state"][k], v, rtol=1e-4, atol=1e-5), k


@pytest.mark.slow
def test_chunked_step_on_a_real_backbone():
    torch.manual_seed(0)
    backbone = build_backbone("bninception", "none", seed=0)
    model = EmbeddingNet(backbone, nn.Linear(1024, 4))
    images, labels = make_batch(n=8)
    images = nn.functional.interpolate(images.float(), size=64).to(torch.uint8)
    ref_loss, ref = full_batch_gradients(model, images, labels)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = dscl_step(model, images, labels, optimizer, 3)
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    worst = max(
        float((p.grad - ref[k]).norm() / ref[k].norm().clamp_min(1e-12))
        for k, p in model.named_parameters()
        if ref[k].norm() > 0
    )
    assert worst < 1e-3


def test_sample_batch():
    rng = np.random.default_rng(0)
    pool = np.arange(100, 200)
    batch = sample_batch(pool, 30, rng)
    assert len(batch) == 30 and len(set(batch)) == 30 and set(batch) <= set(pool)
    assert sorted(sample_batch(pool, 500, rng)) == list(pool)  # the whole pool, once


def _fake_fetch(calls=None, fail_at=None):
    """Images made from the indices, flips and crop seed alone (deterministic); the
    ``fail_at``-th call raises, as an interruption."""

    def fetch(idx, flips, seed):
        if calls is not None:
            calls.append(threading.current_thread().name)
            if len(calls) == fail_at:
                raise KeyboardInterrupt
        g = torch.Generator().manual_seed(int(seed))
        base = torch.randint(0, 256, (1, 3, 12, 12), generator=g, dtype=torch.uint8)
        images = (base + torch.as_tensor(idx, dtype=torch.uint8)[:, None, None, None]).to(torch.uint8)
        images[torch.as_tensor(flips)] = images[torch.as_tensor(flips)].flip(-1)
        return images, torch.as_tensor(idx % 3)

    return fetch


def _train(iterations, prefetch, checkpointer=None, calls=None, fail_at=None):
    from dscl.training.checkpoint import Checkpointer

    model = make_model()
    checkpointer = checkpointer or Checkpointer(None, "x", 1)
    options = LoopOptions(
        iterations=iterations,
        batch_size=12,
        optim=OptimizerConfig(lr=0.05),
        seed=3,
        device=CPU,
        checkpointer=checkpointer,
        chunk_size=5,
        prefetch=prefetch,
    )
    return train_on_images(model, _fake_fetch(calls, fail_at), np.arange(40), DSCL, options)


def test_prefetching_changes_nothing_and_resumes_exactly(tmp_path):
    from dscl.training.checkpoint import Checkpointer

    calls = []
    plain = _train(5, prefetch=False).state_dict()
    fetched = _train(5, prefetch=True, calls=calls).state_dict()
    assert all(torch.equal(plain[k], fetched[k]) for k in plain)
    assert len(calls) == 5 and all(name != threading.main_thread().name for name in calls)
    # interrupted while the 5th batch was being decoded, after the checkpoint of the 4th
    # iteration (drawn ahead: the 5th batch was already drawn when it was written), then
    # resumed: the same model as the uninterrupted run
    with pytest.raises(KeyboardInterrupt):
        _train(
            5, prefetch=True, checkpointer=Checkpointer(tmp_path / "state.pt", "run", 1), calls=[], fail_at=5
        )
    assert torch.load(tmp_path / "state.pt", weights_only=True)["iteration"] == 4
    resumed = _train(5, prefetch=True, checkpointer=Checkpointer(tmp_path / "state.pt", "run", 1))
    assert all(torch.equal(plain[k], resumed.state_dict()[k]) for k in plain)


def test_a_non_finite_loss_or_gradient_leaves_the_parameters_untouched():
    from dscl.objectives import Objective
    from dscl.training.guard import NonFiniteError

    class Broken(Objective):
        """DSCL whose gradient, or loss, is NaN."""

        def __init__(self, bad: str):
            super().__init__("dscl")
            object.__setattr__(self, "bad", bad)

        def loss_and_gradient(self, embeddings, labels):
            loss, grad = DSCL.loss_and_gradient(embeddings, labels)
            if self.bad == "loss":
                return loss * float("nan"), grad
            return loss, grad * float("nan")

    images, labels = make_batch()
    for bad in ("loss", "gradient"):
        model = make_model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        optimizer = make_optimizer(model.parameters(), OptimizerConfig("adam", 1e-2))
        with pytest.raises(NonFiniteError, match=f"the {bad} became NaN or infinite"):
            chunked_step(model, images, labels, optimizer, objective=Broken(bad), chunk_size=5, device=CPU)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", ["triplet", "lifted", "multisim", "facility", "npairs", "dscl"])
def test_objectives_stay_finite_where_a_bfloat16_batch_collapses(name):
    """What can make a run diverge as its loss nears 0: embeddings rounded by bfloat16 onto
    each other (a distance of exactly 0), whole classes collapsed to one point (no
    semi-hard triplet left), a zero embedding; under bfloat16 autocast too."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 5
    centres = torch.randn(5, 8, generator=gen) * 3
    near = (centres[labels] + 1e-3 * torch.randn(60, 8, generator=gen)).bfloat16().float()
    zero = near.clone()
    zero[3] = 0.0
    duplicate = torch.randn(60, 8, generator=gen)
    duplicate[1] = duplicate[0]  # two classes meet at one point
    objective = make_objective(name).bind(np.arange(5), 8)
    for embeddings in (centres[labels].clone(), near, zero, duplicate):
        for amp in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss, grad = objective.loss_and_gradient(embeddings, labels)
            assert torch.isfinite(loss) and bool(torch.isfinite(grad).all()), (name, amp)


@pytest.mark.parametrize("damage", ["half", "noise", "empty-dict-list"])
def test_a_damaged_training_state_is_set_aside_and_training_starts_afresh(tmp_path, damage):
    """A truncated copy (torch: OSError), random bytes or another object: the state is
    renamed ``.damaged`` with one warning, and the run starts from iteration 0."""
    from dscl.training.checkpoint import Checkpointer

    path = tmp_path / "state.pt"
    whole = _train(4, prefetch=False, checkpointer=Checkpointer(path, "run", 2))
    assert path.is_file()
    data = path.read_bytes()
    if damage == "half":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "noise":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    else:
        torch.save([1, 2], path)
    with pytest.warns(
        UserWarning,
        match=r"state.pt is damaged \(\w+\): set aside as state.pt.damaged; training starts afresh",
    ):
        again = _train(4, prefetch=False, checkpointer=Checkpointer(path, "run", 2))
    assert (tmp_path / "state.pt.damaged").is_file()
    whole, again = whole.state_dict(), again.state_dict()
    assert all(torch.equal(whole[k], again[k]) for k in whole)


def test_the_fingerprint_covers_the_code_and_the_data(tmp_path):
    """The code that trains (every imported module of the package) and the files it reads."""
    from dscl.training.checkpoint import code_digest, files_digest

    (tmp_path / "f").mkdir()
    (tmp_path / "f/a.npy").write_bytes(b"1")
    first = files_digest([tmp_path / "f"])
    (tmp_path / "f/a.npy").write_bytes(b"2")
    assert files_digest([tmp_path / "f"]) != first
    moved = tmp_path / "elsewhere"
    (tmp_path / "f").rename(moved)
    assert files_digest([moved]) == files_digest([moved])  # where the folder lies does not matter
    (tmp_path / "g").mkdir()
    (tmp_path / "g/a.npy").write_bytes(b"2")
    assert files_digest([moved]) == files_digest([tmp_path / "g"])
    digest = code_digest()
    assert len(digest) == 64 and digest == code_digest()


def test_collapsed_embeddings_are_caught_and_spread_ones_pass():
    """The guard's two tests: a point (constant rows, or float32 rounding of one) and a
    line; real embeddings, however small their scale, pass."""
    from dscl.training.guard import CollapsedError, check_spread

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    check_spread(x)
    check_spread(1e-20 * x.astype(np.float64))  # scale does not matter
    for bad, words in (
        (np.ones((50, 8), np.float32), "to a point"),
        (np.zeros((50, 8), np.float32), "to a point"),
        (np.float32(1e6) + np.float32(1e-2) * x, "to a point"),  # rounding noise around one point
        (np.outer(rng.normal(size=50), rng.normal(size=8)) + 3.0, "onto a line"),
    ):
        with pytest.raises(CollapsedError, match=words):
            check_spread(bad)


def test_a_repository_without_a_commit_is_named_not_a_traceback(tmp_path, monkeypatch):
    """DVCLive reads the git revision of the project: in a new repository with no commit
    it fails deep inside; the training log says what to do in one line."""
    import subprocess
    import sys

    from dscl.errors import DSCLError
    from dscl.training.log import LiveLog

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DSCLError, match="needs the project's git repository to hold a commit"):
        LiveLog(tmp_path / "live", resume_step=None)
