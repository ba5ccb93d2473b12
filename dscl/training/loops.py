"""The training loops: the last layer on cached features, and all layers on images.

The loops know nothing of files or DVC: they take data and callbacks (``log`` receives
``(step, {name: value})``; a :class:`dscl.training.checkpoint.Checkpointer` makes them resumable;
an :class:`dscl.evaluation.selection.EarlyStopping` validates and keeps the best state).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dscl.evaluation.selection import EarlyStopping
from dscl.objectives import Objective
from dscl.training.checkpoint import Checkpointer
from dscl.training.distributed import data_parallel, rank_and_world
from dscl.training.guard import DivergedError, NonFiniteError, check_finite
from dscl.training.model import EmbeddingNet
from dscl.training.optim import OptimizerConfig, make_optimizer, parameter_groups
from dscl.training.sampling import BatchSampler
from dscl.training.steps import chunked_step, freeze_batchnorm, softmax_step

__all__ = ["Fetch", "LogFn", "train_last_layer", "train_on_images"]

LogFn = Callable[[int, dict], None]
Fetch = Callable[[np.ndarray, np.ndarray, int], tuple[torch.Tensor, torch.Tensor]]


def _no_log(step: int, values: dict) -> None:
    pass


def _diverged(stopper: EarlyStopping, step: int, err: NonFiniteError) -> None:
    """Training met a non-finite value at ``step``: record it (the loop then ends and
    restores the best validated state), or raise :class:`DivergedError` when no state was
    validated before it."""
    if stopper.best_state is None:
        raise DivergedError(step, err.what) from None
    stopper.diverged = step


def _with_objective(model: nn.Module, objective) -> nn.Module:
    """``model``, or with an objective's own parameters, both in one module (checkpoints)."""
    if not isinstance(objective, Objective) or objective.module is None:
        return model
    return nn.ModuleDict({"model": model, "objective": objective.module})


def train_last_layer(
    head: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    pool: np.ndarray,
    *,
    objective: Objective,
    iterations: int,
    batch_size: int,
    optim: OptimizerConfig,
    seed: int,
    device: torch.device,
    features_mirrored: torch.Tensor | None = None,
    classes_per_batch: int | None = None,
    checkpointer: Checkpointer | None = None,
    log: LogFn = _no_log,
    stopper: EarlyStopping | None = None,
) -> nn.Module:
    """Learn only the last layer on cached backbone features with a batch objective.

    Each iteration samples ``batch_size`` training examples from ``pool`` (with
    ``classes_per_batch``, among that many random classes, see
    :class:`dscl.training.sampling.BatchSampler`), each seen in its original or (with
    ``features_mirrored``) its mirrored view at random, and takes one step on the
    objective of the whole batch. ``stopper`` validates the layer at step 0 and every few
    steps, and the returned layer is the best validated state (early stopping).

    Parameters
    ----------
    head : nn.Module
        The layer (D -> d).
    features : Tensor of shape (N, D)
    labels : Tensor of shape (N,)
    pool : ndarray of int
        The training examples that may be sampled (indices into ``features``).
    objective : Objective
        :func:`dscl.objectives.make_objective`.
    iterations, batch_size : int
    optim : OptimizerConfig
    seed : int
        Seeds the batches and the mirroring.
    device : torch.device
    features_mirrored : Tensor of shape (N, D), optional
    classes_per_batch : int, optional
    checkpointer, log, stopper :
        Resumption, the curve logger and model selection.
    """
    checkpointer = checkpointer or Checkpointer(None, "", 0)
    head = head.to(device)
    if objective.module is None:
        optimizer = make_optimizer(head.parameters(), optim)
    else:  # the objective's own parameters (proxies), at their own learning rate
        objective.module.to(device)
        optimizer = make_optimizer(
            [{"params": list(head.parameters())}, *objective.parameter_group(optim.lr)], optim
        )
    tracked = _with_objective(head, objective)  # what a checkpoint saves
    rng = np.random.default_rng(seed)
    stopper = stopper or EarlyStopping(None, 0)
    start = checkpointer.resume(tracked, optimizer, rng, extra=stopper)
    sampler = BatchSampler(pool, batch_size, labels.cpu().numpy(), classes_per_batch)
    if start == 0 and stopper.enabled:
        log(0, stopper(0, head))
    features, labels = features.to(device), labels.to(device)
    if features_mirrored is not None:
        features_mirrored = features_mirrored.to(device)
    for it in tqdm(range(start, iterations), desc="train (last layer)", initial=start, total=iterations):
        if stopper.stop:
            break
        idx = torch.from_numpy(sampler(rng)).to(device)
        x = features[idx]
        if features_mirrored is not None:
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(device)
            x = torch.where(flip[:, None], features_mirrored[idx], x)
        try:
            loss = objective(head(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            check_finite(loss, optimizer)
            optimizer.step()
            values = {"loss": loss.item()}
            if stopper.due(it + 1, iterations):
                values.update(stopper(it + 1, head))
        except NonFiniteError as err:
            _diverged(stopper, it + 1, err)
            break
        log(it + 1, values)
        checkpointer.maybe_save(
            it + 1, iterations, tracked, optimizer, rng, extra=stopper, force=stopper.stop
        )
    stopper.restore(head)
    return head


def train_on_images(
    model: EmbeddingNet,
    fetch: Fetch,
    pool: np.ndarray,
    *,
    objective: Objective | Literal["softmax"],
    iterations: int,
    batch_size: int,
    chunk_size: int,
    optim: OptimizerConfig,
    seed: int,
    device: torch.device,
    amp: bool = False,
    mirror: bool = True,
    prefetch: bool = True,
    all_labels: np.ndarray | None = None,
    classes_per_batch: int | None = None,
    checkpointer: Checkpointer | None = None,
    log: LogFn = _no_log,
    stopper: EarlyStopping | None = None,
) -> EmbeddingNet:
    """Learn all trainable layers on images.

    ``objective`` is a batch objective (the chunked update of
    :func:`dscl.training.steps.chunked_step`) or "softmax" (cross-entropy on the class
    scores, gradients accumulated over chunks). ``fetch(indices, flips, seed)`` decodes
    a batch: uint8 images (m, c, h, w) and labels (m,), mirrored where ``flips``, random
    crops seeded by ``seed`` and the index. Every process draws the same batch (same
    seed); under ``torchrun`` each decodes and embeds its own contiguous share of it.

    With ``prefetch``, the next batch is decoded in a background thread while the
    current one is learned. The batches and the result are exactly those without it,
    and so is resumption: a checkpoint stores the random state from before the next
    batch was drawn.

    ``stopper`` validates at step 0 and every few steps; the returned model is the best
    validated state (early stopping). ``classes_per_batch`` (with ``all_labels``, the
    labels of all examples) draws each batch among that many random classes. A
    non-finite loss, gradient or validation embedding ends training as in
    :func:`train_last_layer`.
    """
    if not isinstance(objective, Objective) and objective != "softmax":
        raise ValueError(f"objective must be an Objective or 'softmax', got {objective!r}")
    name = objective.name if isinstance(objective, Objective) else objective
    checkpointer = checkpointer or Checkpointer(None, "", 0)
    rank, world = rank_and_world()
    model = model.to(device)
    groups = parameter_groups(model, optim)
    if isinstance(objective, Objective) and objective.module is not None:
        objective.module.to(device)
        groups += objective.parameter_group(optim.lr)  # the proxies, at their own rate
    optimizer = make_optimizer(groups, optim)
    tracked = _with_objective(model, objective)  # what a checkpoint saves
    rng = np.random.default_rng(seed)  # identical on every process: same batches
    stopper = stopper or EarlyStopping(None, 0)
    start = checkpointer.resume(tracked, optimizer, rng, extra=stopper)
    sampler = BatchSampler(pool, batch_size, all_labels, classes_per_batch)
    parallel = data_parallel(model)  # the model itself in one process
    classes = model.class_ids.to(device)
    if start == 0 and stopper.enabled:
        log(0, stopper(0, model))

    def draw() -> tuple[np.ndarray, np.ndarray, int, int]:
        """The next batch: this process's indices and flips, the crop seed, n."""
        idx = sampler(rng)  # (n,)
        if len(idx) < world:
            raise ValueError(f"a batch of {len(idx)} cannot be shared by {world} processes")
        flips = rng.random(len(idx)) < 0.5 if mirror else np.zeros(len(idx), dtype=bool)
        crop_seed = int(rng.integers(2**31))
        share = np.array_split(np.arange(len(idx)), world)[rank]
        return idx[share], flips[share], crop_seed, len(idx)

    loader = ThreadPoolExecutor(1) if prefetch else None

    def submit(plan):
        if loader is None:
            return plan
        return loader.submit(fetch, *plan[:3]), plan[3]

    progress = tqdm(
        range(start, iterations),
        desc=f"train ({name}, all layers)",
        initial=start,
        total=iterations,
        disable=rank != 0,
    )
    pending = submit(draw()) if start < iterations and not stopper.stop else None
    try:
        for it in progress:
            if stopper.stop:
                break
            model.train()
            freeze_batchnorm(model)
            if loader is None:
                idx, flips, crop_seed, n = pending
                images, labels = fetch(idx, flips, crop_seed)
            else:
                future, n = pending
                images, labels = future.result()
            resume_state = rng.bit_generator.state  # before the next batch is drawn
            if it + 1 < iterations:
                pending = submit(draw())  # decoded while this batch is learned
            try:
                if objective == "softmax":
                    loss = softmax_step(
                        parallel,
                        images,
                        labels,
                        optimizer,
                        classes=classes,
                        chunk_size=chunk_size,
                        device=device,
                        amp=amp,
                        batch_total=n,
                    )
                else:
                    loss = chunked_step(
                        parallel,
                        images,
                        labels,
                        optimizer,
                        objective=objective,
                        chunk_size=chunk_size,
                        device=device,
                        amp=amp,
                    )
                values = {"loss": loss}
                if stopper.due(it + 1, iterations):
                    values.update(stopper(it + 1, model))
            except NonFiniteError as err:
                _diverged(stopper, it + 1, err)
                break
            log(it + 1, values)
            if rank == 0:
                snapshot = np.random.default_rng()
                snapshot.bit_generator.state = resume_state
                checkpointer.maybe_save(
                    it + 1, iterations, tracked, optimizer, snapshot, extra=stopper, force=stopper.stop
                )
    finally:
        if loader is not None:
            loader.shutdown(cancel_futures=True)
    stopper.restore(model)
    return model
