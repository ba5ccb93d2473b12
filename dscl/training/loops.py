"""The training loops: the last layer on cached features, and all layers on images.

The loops know nothing of files or DVC: they take data, an objective and one
:class:`LoopOptions` (the schedule, the optimiser, the seed and the callbacks: ``log``
receives ``(step, {name: value})``; a :class:`dscl.training.checkpoint.Checkpointer` makes
them resumable; an :class:`dscl.scoring.selection.EarlyStopping` validates and keeps the
best state).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dscl.objectives import Objective
from dscl.scoring.selection import EarlyStopping
from dscl.training.checkpoint import Checkpointer
from dscl.training.distributed import data_parallel, rank_and_world
from dscl.training.guard import DivergedError, UnusableError, check_finite
from dscl.training.model import EmbeddingNet
from dscl.training.optim import OptimizerConfig, make_optimizer, parameter_groups
from dscl.training.sampling import BatchSampler
from dscl.training.steps import chunked_step, freeze_batchnorm, summed_step

__all__ = ["Fetch", "LogFn", "LoopOptions", "train_last_layer", "train_on_images"]

LogFn = Callable[[int, dict], None]
Fetch = Callable[[np.ndarray, np.ndarray, int], tuple[torch.Tensor, torch.Tensor]]


def _no_log(step: int, values: dict) -> None:
    pass


@dataclass
class LoopOptions:
    """How a loop trains: what both loops take besides the model, the data and the objective.

    Attributes
    ----------
    iterations, batch_size : int
    optim : OptimizerConfig
    seed : int
        Seeds the batches, the mirroring and the crops.
    device : torch.device
    classes_per_batch : int, optional
        Each batch drawn among that many random classes
        (:class:`dscl.training.sampling.BatchSampler`).
    checkpointer, log, stopper :
        Resumption, the curve logger and model selection (none by default).
    chunk_size : int
        All layers: the images embedded at once (the memory bound of Section 4.1).
    amp : bool
        All layers: bfloat16 autocast.
    mirror : bool
        All layers: each image mirrored at random (the last layer mirrors where it is
        given the mirrored features).
    prefetch : bool
        All layers: the next batch decoded in a background thread while the current one
        is learned (the batches and the result are exactly those without it).
    """

    iterations: int
    batch_size: int
    optim: OptimizerConfig
    seed: int
    device: torch.device
    classes_per_batch: int | None = None
    checkpointer: Checkpointer = field(default_factory=lambda: Checkpointer(None, "", 0))
    log: LogFn = _no_log
    stopper: EarlyStopping = field(default_factory=lambda: EarlyStopping(None, 0))
    chunk_size: int = 64
    amp: bool = False
    mirror: bool = True
    prefetch: bool = True


def _with_objective(model: nn.Module, objective: Objective) -> nn.Module:
    """``model``, or with an objective's own parameters, both in one module (checkpoints)."""
    if objective.module is None:
        return model
    return nn.ModuleDict({"model": model, "objective": objective.module})


def _optimizer(groups: list[dict], objective: Objective, options: LoopOptions) -> torch.optim.Optimizer:
    """The optimiser of ``groups`` and of the objective's own parameters (the proxies, a
    classifier), those at their own learning rate."""
    if objective.module is not None:
        objective.module.to(options.device)
    return make_optimizer(groups + objective.parameter_group(options.optim.lr), options.optim)


Step = Callable[[int], tuple[float, np.random.Generator]]


def _run(model: nn.Module, tracked: nn.Module, optimizer, start: int, step: Step, desc: str, options) -> None:
    """Steps ``start`` .. ``iterations`` of ``step(it) -> (loss, random state to checkpoint)``,
    validated where due, logged and checkpointed; then the best validated state restored.

    A non-finite loss or gradient, or a non-finite or collapsed validation embedding, at a
    step ends training there: the step and what happened are recorded
    (``stopper.diverged``, ``stopper.stopped_by``) and the best state validated before it
    kept, or :class:`dscl.training.guard.DivergedError` is raised when none was validated."""
    rank, _ = rank_and_world()
    stopper, total = options.stopper, options.iterations
    for it in tqdm(range(start, total), desc=desc, initial=start, total=total, disable=rank != 0):
        if stopper.stop:
            break
        try:
            loss, rng = step(it)
            values = {"loss": loss}
            if stopper.due(it + 1, total):
                values.update(stopper(it + 1, model))
        except UnusableError as err:
            if stopper.best_state is None:
                raise DivergedError(it + 1, err.what) from None
            stopper.diverged, stopper.stopped_by = it + 1, err.what
            break
        options.log(it + 1, values)
        if rank == 0:
            options.checkpointer.maybe_save(
                it + 1, total, tracked, optimizer, rng, extra=stopper, force=stopper.stop
            )
    stopper.restore(model)


def _resume(tracked: nn.Module, model: nn.Module, optimizer, rng, options: LoopOptions) -> int:
    """The step to start from (a checkpoint's, or 0 after validating the initial state)."""
    start = options.checkpointer.resume(tracked, optimizer, rng, extra=options.stopper)
    if start == 0 and options.stopper.enabled:
        try:
            options.log(0, options.stopper(0, model))
        except UnusableError as err:  # the initial state itself: nothing to keep
            raise DivergedError(0, err.what) from None
    return start


def train_last_layer(
    head: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    pool: np.ndarray,
    objective: Objective,
    options: LoopOptions,
    *,
    features_mirrored: torch.Tensor | None = None,
) -> nn.Module:
    """Learn only the last layer ``head`` (D -> d) on cached backbone features (N, D) with
    labels (N,) and a batch objective (:func:`dscl.objectives.make_objective`).

    Each iteration samples ``batch_size`` training examples from ``pool`` (indices into
    ``features``), each seen in its original or (with ``features_mirrored``) its mirrored
    view at random, and takes one step on the objective of the whole batch. The returned
    layer is the best validated state (early stopping).
    """
    device = options.device
    head = head.to(device)
    optimizer = _optimizer([{"params": list(head.parameters())}], objective, options)
    tracked = _with_objective(head, objective)  # what a checkpoint saves
    rng = np.random.default_rng(options.seed)
    start = _resume(tracked, head, optimizer, rng, options)
    sampler = BatchSampler(pool, options.batch_size, labels.cpu().numpy(), options.classes_per_batch)
    features, labels = features.to(device), labels.to(device)
    if features_mirrored is not None:
        features_mirrored = features_mirrored.to(device)

    def step(it: int) -> tuple[float, np.random.Generator]:
        idx = torch.from_numpy(sampler(rng)).to(device)
        x = features[idx]
        if features_mirrored is not None:
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(device)
            x = torch.where(flip[:, None], features_mirrored[idx], x)
        loss = objective(head(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        check_finite(loss, optimizer)
        optimizer.step()
        return loss.item(), rng

    _run(head, tracked, optimizer, start, step, "train (last layer)", options)
    return head


class _Batches:
    """The batches of a run of all layers, in order: drawn from the run's random state
    (the same on every process), this process's share decoded by ``fetch`` (with
    ``prefetch``, the next batch in a background thread while the current one is
    learned). :meth:`next` also gives the random state from before the next batch was
    drawn, what a checkpoint must store for a resumed run to draw the same batches."""

    def __init__(self, fetch: Fetch, sampler: BatchSampler, rng: np.random.Generator, options: LoopOptions):
        self.fetch, self.sampler, self.rng, self.mirror = fetch, sampler, rng, options.mirror
        self.rank, self.world = rank_and_world()
        self.loader = ThreadPoolExecutor(1) if options.prefetch else None
        self.pending = None

    def _draw(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        """The next batch: this process's indices and flips, the crop seed, n."""
        idx = self.sampler(self.rng)  # (n,)
        if len(idx) < self.world:
            raise ValueError(f"a batch of {len(idx)} cannot be shared by {self.world} processes")
        flips = self.rng.random(len(idx)) < 0.5 if self.mirror else np.zeros(len(idx), dtype=bool)
        crop_seed = int(self.rng.integers(2**31))
        share = np.array_split(np.arange(len(idx)), self.world)[self.rank]
        return idx[share], flips[share], crop_seed, len(idx)

    def _submit(self) -> None:
        plan = self._draw()
        self.pending = plan if self.loader is None else (self.loader.submit(self.fetch, *plan[:3]), plan[3])

    def start(self) -> None:
        self._submit()

    def next(self, more: bool) -> tuple[torch.Tensor, torch.Tensor, int, np.random.Generator]:
        """Images, labels, the batch's size over every process, and the random state to
        checkpoint; the next batch drawn (and submitted) where ``more`` follow."""
        if self.loader is None:
            idx, flips, crop_seed, n = self.pending
            images, labels = self.fetch(idx, flips, crop_seed)
        else:
            future, n = self.pending
            images, labels = future.result()
        snapshot = np.random.default_rng()
        snapshot.bit_generator.state = self.rng.bit_generator.state  # before the next draw
        if more:
            self._submit()  # decoded while this batch is learned
        return images, labels, n, snapshot

    def close(self) -> None:
        if self.loader is not None:
            self.loader.shutdown(cancel_futures=True)


def train_on_images(
    model: EmbeddingNet,
    fetch: Fetch,
    pool: np.ndarray,
    objective: Objective,
    options: LoopOptions,
    *,
    all_labels: np.ndarray | None = None,
) -> EmbeddingNet:
    """Learn all trainable layers on images.

    A batch objective takes the chunked update of Section 4.1
    (:func:`dscl.training.steps.chunked_step`); one that is a mean over examples (softmax)
    accumulates each chunk's gradient (:func:`dscl.training.steps.summed_step`).
    ``fetch(indices, flips, seed)`` decodes a batch: uint8 images (m, c, h, w) and labels
    (m,), mirrored where ``flips``, random crops seeded by ``seed`` and the index. Every
    process draws the same batch (same seed); under ``torchrun`` each decodes and embeds
    its own contiguous share of it. ``all_labels`` (the labels of all examples) lets
    ``classes_per_batch`` draw each batch among that many classes. The returned model is
    the best validated state (early stopping); a non-finite value ends training as in
    :func:`train_last_layer`.
    """
    device = options.device
    model = model.to(device)
    optimizer = _optimizer(parameter_groups(model, options.optim), objective, options)
    tracked = _with_objective(model, objective)  # what a checkpoint saves
    rng = np.random.default_rng(options.seed)  # identical on every process: same batches
    start = _resume(tracked, model, optimizer, rng, options)
    sampler = BatchSampler(pool, options.batch_size, all_labels, options.classes_per_batch)
    parallel = data_parallel(model)  # the model itself in one process
    batches = _Batches(fetch, sampler, rng, options)
    if start < options.iterations and not options.stopper.stop:
        batches.start()
    common = {"objective": objective, "chunk_size": options.chunk_size, "device": device, "amp": options.amp}

    def step(it: int) -> tuple[float, np.random.Generator]:
        model.train()
        freeze_batchnorm(model)
        images, labels, n, snapshot = batches.next(it + 1 < options.iterations)
        if objective.per_example:
            return summed_step(parallel, images, labels, optimizer, batch_total=n, **common), snapshot
        return chunked_step(parallel, images, labels, optimizer, **common), snapshot

    try:
        _run(model, tracked, optimizer, start, step, f"train ({objective.name}, all layers)", options)
    finally:
        batches.close()
    return model
