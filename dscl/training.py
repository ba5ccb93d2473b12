"""Training loops: DSCL on cached features (last layer), DSCL end to end with the chunked
update of Section 4.1 of [1], and the softmax-regression baseline.

The loops know nothing of files or DVC: they take data and callbacks (``log`` receives
``(step, {name: value})``; a :class:`dscl.checkpoint.Checkpointer` makes them resumable).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from dscl.checkpoint import Checkpointer
from dscl.loss import dscl_loss, dscl_loss_and_gradient
from dscl.methods import Objective
from dscl.selection import EarlyStopping

__all__ = [
    "OptimizerConfig",
    "EmbeddingNet",
    "make_optimizer",
    "parameter_groups",
    "sample_batch",
    "BatchSampler",
    "freeze_batchnorm",
    "chunked_step",
    "chunked_dscl_step",
    "allreduce_gradients",
    "train_last_layer",
    "train_on_images",
    "OPTIMIZERS",
]

OPTIMIZERS = ("sgd", "adam")
LogFn = Callable[[int, dict], None]


@dataclass(frozen=True)
class OptimizerConfig:
    """``lr`` for the learned layers; ``backbone_lr`` for the pretrained ones (None: lr)."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    backbone_lr: float | None = None

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def make_optimizer(params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """``params``: an iterable of tensors or of parameter groups (dicts, which may set
    their own ``lr``)."""
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def parameter_groups(model: EmbeddingNet, cfg: OptimizerConfig) -> list[dict]:
    """The pretrained backbone at ``cfg.backbone_lr`` (or ``cfg.lr``), the new layers
    (head, classifier) at ``cfg.lr``; frozen parameters are left out."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    ids = {id(p) for p in backbone}
    new = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": new, "lr": cfg.lr}]
    if backbone:
        groups.append({"params": backbone, "lr": cfg.lr if cfg.backbone_lr is None else cfg.backbone_lr})
    return groups


class EmbeddingNet(nn.Module):
    """``backbone`` (images -> pooled features) followed by the learned last layer
    ``head`` (features -> embedding).

    For the softmax baseline, ``class_ids`` (sorted) are the training classes the
    scores refer to, and ``classifier`` maps the embedding to class scores where the
    embedding is not itself the score vector (its dimension differs from the number of
    classes).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, classifier: nn.Module | None = None,
                 class_ids: torch.Tensor | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.classifier = classifier
        self.register_buffer(
            "class_ids", torch.empty(0, dtype=torch.long) if class_ids is None else class_ids)

    @classmethod
    def build(cls, backbone: nn.Module, feature_dim: int, embedding_dim: int,
              class_ids: torch.Tensor | None = None, classifier: bool = False,
              seed: int = 0) -> EmbeddingNet:
        """A new network whose head (and classifier) are initialised from ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = nn.Linear(feature_dim, embedding_dim)
            scores = nn.Linear(embedding_dim, len(class_ids)) if classifier else None
        return cls(backbone, head, scores, class_ids)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def sample_batch(pool: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """``batch_size`` indices drawn uniformly without replacement from ``pool``
    (Algorithm 1 of [1], step 2); the whole pool when it is smaller."""
    if len(pool) <= batch_size:
        return rng.permutation(pool)
    return rng.choice(pool, size=batch_size, replace=False)


class BatchSampler:
    """Draws the training batches (Algorithm 1 of [1], step 2).

    ``classes_per_batch`` None: ``batch_size`` examples uniformly from ``pool``.
    Otherwise each batch first draws ``classes_per_batch`` of the pool's classes, then
    ``batch_size`` examples among theirs: SOP's "512 randomly sampled training
    categories" (Section 4.1), sampled anew for every batch so that training sees every
    training image. ``labels`` are the labels of all examples (``pool`` indexes them).
    """

    def __init__(self, pool: np.ndarray, batch_size: int, labels: np.ndarray | None = None,
                 classes_per_batch: int | None = None):
        self.pool = np.asarray(pool)
        self.batch_size = batch_size
        self.classes_per_batch = classes_per_batch
        if classes_per_batch is not None:
            if labels is None:
                raise ValueError("classes_per_batch needs the labels")
            pool_labels = np.asarray(labels)[self.pool]
            self.classes, inverse = np.unique(pool_labels, return_inverse=True)
            if not 2 <= classes_per_batch <= len(self.classes):
                raise ValueError(f"classes per batch must be in [2, {len(self.classes)}] (the "
                                 f"training classes), got {classes_per_batch}")
            order = np.argsort(inverse, kind="stable")
            self.members = np.split(self.pool[order], np.cumsum(np.bincount(inverse))[:-1])

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        if self.classes_per_batch is None:
            return sample_batch(self.pool, self.batch_size, rng)
        chosen = np.sort(rng.choice(len(self.classes), self.classes_per_batch, replace=False))
        return sample_batch(np.concatenate([self.members[c] for c in chosen]), self.batch_size, rng)


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every batch-norm and dropout layer in eval mode.

    Batch norm then uses the ImageNet running statistics without updating them, and
    dropout is off, so both passes of :func:`chunked_dscl_step` compute the same
    function and the update does not depend on how the batch is chunked (nor, under
    ``torchrun``, on how it is shared between processes).
    """
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def chunked_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    chunk_size: int,
    device: torch.device,
    amp: bool = False,
    objective: Objective | None = None,
) -> float:
    """One update of all trainable layers on a batch objective, memory bounded by
    ``chunk_size``.

    Section 4.1 of [1]: (1) embed every sub-batch without a graph and concatenate them
    into F; (2) compute the gradient G of the loss for the whole batch once (DSCL: the
    closed form of Eq. 9; any other objective of :mod:`dscl.methods`: one autograd pass
    on F alone); (3) embed each sub-batch again with a graph and back-propagate
    ``<F_i, G_i>``. The parameter gradient is the whole batch's, exactly.

    Under ``torchrun``, ``images``/``labels`` are this process's share of the batch:
    F and the labels are all-gathered, every process computes the same G, back-propagates
    its own rows, and the parameter gradients are summed across processes; the update
    equals the single-process one up to float error.

    Parameters
    ----------
    images : uint8 Tensor of shape (m, c, h, w)
    labels : Tensor of shape (m,)
    objective : the batch objective (None: DSCL)

    Returns
    -------
    The loss on the whole batch, before the update.
    """
    rank, world = _rank_and_world()
    freeze_batchnorm(model)
    chunks = torch.split(torch.arange(images.shape[0]), chunk_size)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    with torch.no_grad(), autocast:
        f_local = torch.cat([model(images[c].to(device, non_blocking=True)).float() for c in chunks])
    y_local = labels.to(device)
    if world > 1:
        sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([f_local.shape[0]], device=device))
        sizes = [int(s) for s in sizes]
        f_all = _gather_rows(f_local, sizes)
        y_all = _gather_rows(y_local, sizes)
        offset = sum(sizes[:rank])
    else:
        f_all, y_all, offset = f_local, y_local, 0
    if objective is None:
        loss, grad = dscl_loss_and_gradient(f_all, y_all)  # Eq. (10) and dLoss/dF, (n, d)
    else:
        loss, grad = objective.loss_and_gradient(f_all, y_all)
    grad = grad[offset : offset + f_local.shape[0]]  # this process's rows
    optimizer.zero_grad(set_to_none=True)
    for c in chunks:
        with autocast:
            f_chunk = model(images[c].to(device, non_blocking=True)).float()
        (f_chunk * grad[c.to(device)]).sum().backward()  # d<F_i, G_i>/dθ
    if world > 1:
        allreduce_gradients(model.parameters())
    optimizer.step()
    return float(loss)


def chunked_dscl_step(model, images, labels, optimizer, chunk_size, device, amp=False) -> float:
    """:func:`chunked_step` on the DSCL loss (Eq. 10)."""
    return chunked_step(model, images, labels, optimizer, chunk_size, device, amp)


BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's default bucket_cap_mb


def allreduce_gradients(parameters, bucket_bytes: int = BUCKET_BYTES) -> int:
    """Sum the parameters' gradients across processes, in buckets as
    ``DistributedDataParallel`` does: gradients are packed into flat buffers of about
    ``bucket_bytes`` (one dtype and device per buffer), one ``all_reduce`` per buffer, and
    unpacked, instead of one collective per parameter.

    A parameter that has a gradient on some process but not on this one (its share of
    the batch was empty) gets zeros first; one that has none anywhere keeps none, so the
    optimiser skips it as in a single process. Returns the number of collectives issued.
    """
    params = [p for p in parameters if p.requires_grad]
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8,
                           device=params[0].device if params else "cpu")
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    calls = 1
    grads = []
    for p, anywhere in zip(params, present.tolist()):
        if anywhere:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    buckets: dict[tuple, list[torch.Tensor]] = {}
    sizes: dict[tuple, int] = {}

    def flush(key):
        bucket = buckets.pop(key, [])
        sizes.pop(key, None)
        if not bucket:
            return 0
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        return 1

    for g in grads:
        key = (g.dtype, g.device)
        buckets.setdefault(key, []).append(g)
        sizes[key] = sizes.get(key, 0) + g.numel() * g.element_size()
        if sizes[key] >= bucket_bytes:
            calls += flush(key)
    for key in list(buckets):
        calls += flush(key)
    return calls


def _gather_rows(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """All-gather tensors with different numbers of rows."""
    biggest = max(sizes)
    padded = x.new_zeros((biggest, *x.shape[1:]))
    padded[: x.shape[0]] = x
    out = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(out, padded)
    return torch.cat([o[:s] for o, s in zip(out, sizes)])


def train_last_layer(
    head: nn.Module,
    features: torch.Tensor,
    features_mirrored: torch.Tensor | None,
    labels: torch.Tensor,
    pool: np.ndarray,
    iterations: int,
    batch_size: int,
    optim: OptimizerConfig,
    seed: int,
    checkpointer: Checkpointer,
    log: LogFn,
    device: torch.device,
    stopper: EarlyStopping | None = None,
    classes_per_batch: int | None = None,
    objective: Objective | None = None,
) -> nn.Module:
    """Learn only the last layer on cached backbone features, with DSCL (``objective``
    None) or another batch objective of :mod:`dscl.methods`.

    Each iteration samples ``batch_size`` training examples from ``pool`` (indices into
    ``features``; with ``classes_per_batch``, among that many random classes, see
    :class:`BatchSampler`), each seen in its original or (with ``features_mirrored``) its
    mirrored view at random, and takes one step on the objective of the whole batch.

    ``stopper`` validates the layer at step 0 and every few steps, and the returned layer
    is the best validated state (early stopping); its curve is logged beside the loss.

    Parameters
    ----------
    features, features_mirrored : Tensor of shape (N, D)
    labels : Tensor of shape (N,)
    pool : ndarray of int
        The training examples that may be sampled.
    """
    head = head.to(device)
    optimizer = make_optimizer(head.parameters(), optim)
    rng = np.random.default_rng(seed)
    stopper = stopper or EarlyStopping(None, 0)
    start = checkpointer.resume(head, optimizer, rng, extra=stopper)
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
        emb = head(x)
        loss = dscl_loss(emb, labels[idx]) if objective is None else objective(emb, labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        values = {"loss": loss.item()}
        if stopper.due(it + 1, iterations):
            values.update(stopper(it + 1, head))
        log(it + 1, values)
        checkpointer.maybe_save(it + 1, iterations, head, optimizer, rng, extra=stopper, force=stopper.stop)
    stopper.restore(head)
    return head


def train_on_images(
    model: EmbeddingNet,
    fetch: Callable[[np.ndarray, np.ndarray, int], tuple[torch.Tensor, torch.Tensor]],
    pool: np.ndarray,
    objective: str | Objective,
    iterations: int,
    batch_size: int,
    chunk_size: int,
    optim: OptimizerConfig,
    seed: int,
    checkpointer: Checkpointer,
    log: LogFn,
    device: torch.device,
    amp: bool = False,
    mirror: bool = True,
    prefetch: bool = True,
    stopper: EarlyStopping | None = None,
    all_labels: np.ndarray | None = None,
    classes_per_batch: int | None = None,
) -> EmbeddingNet:
    """Learn all trainable layers on images.

    ``objective`` is "dscl" or an :class:`dscl.methods.Objective` (the chunked update of
    :func:`chunked_step`), or "softmax" (cross-entropy on the class scores, gradients
    accumulated over chunks).
    ``fetch(indices, flips, seed)`` decodes a batch: uint8 images (m, c, h, w) and
    labels (m,), mirrored where ``flips``, random crops seeded by ``seed`` and the index.
    Every process draws the same batch (same seed); under ``torchrun`` each decodes and
    embeds its own contiguous share of it.

    With ``prefetch``, the next batch is decoded in a background thread while the
    current one is learned. The batches and the result are exactly those without it,
    and so is resumption: a checkpoint stores the random state from before the next
    batch was drawn.

    ``stopper`` validates at step 0 and every few steps; the returned model is the best
    validated state (early stopping). ``classes_per_batch`` (with ``all_labels``, the
    labels of all examples) draws each batch among that many random classes (:class:`BatchSampler`).
    """
    if not isinstance(objective, Objective) and objective not in ("dscl", "softmax"):
        raise ValueError(f"objective must be 'dscl', 'softmax' or an Objective, got {objective!r}")
    name = objective.name if isinstance(objective, Objective) else objective
    rank, world = _rank_and_world()
    model = model.to(device)
    optimizer = make_optimizer(parameter_groups(model, optim), optim)
    rng = np.random.default_rng(seed)  # identical on every process: same batches
    stopper = stopper or EarlyStopping(None, 0)
    start = checkpointer.resume(model, optimizer, rng, extra=stopper)
    sampler = BatchSampler(pool, batch_size, all_labels, classes_per_batch)
    classes = None
    if start == 0 and stopper.enabled:
        log(0, stopper(0, model))

    def draw() -> tuple[np.ndarray, np.ndarray, int, int]:
        """The next batch: this process's indices and flips, the crop seed, n."""
        idx = sampler(rng)  # (n,)
        flips = rng.random(len(idx)) < 0.5 if mirror else np.zeros(len(idx), dtype=bool)
        crop_seed = int(rng.integers(2**31))
        share = np.array_split(np.arange(len(idx)), world)[rank]
        return idx[share], flips[share], crop_seed, len(idx)

    loader = ThreadPoolExecutor(1) if prefetch else None

    def submit(plan):
        if loader is None:
            return plan
        return loader.submit(fetch, *plan[:3]), plan[3]

    progress = tqdm(range(start, iterations), desc=f"train ({name}, all layers)",
                    initial=start, total=iterations, disable=rank != 0)
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
            if objective != "softmax":
                loss = chunked_step(model, images, labels, optimizer, chunk_size, device, amp,
                                    None if objective == "dscl" else objective)
            else:
                if classes is None:
                    classes = model.class_ids.to(device)
                loss = _softmax_step(model, images, labels, classes, optimizer, chunk_size, device, amp, n)
            values = {"loss": loss}
            if stopper.due(it + 1, iterations):
                values.update(stopper(it + 1, model))
            log(it + 1, values)
            if rank == 0:
                snapshot = np.random.default_rng()
                snapshot.bit_generator.state = resume_state
                checkpointer.maybe_save(it + 1, iterations, model, optimizer, snapshot, extra=stopper,
                                        force=stopper.stop)
    finally:
        if loader is not None:
            loader.shutdown(cancel_futures=True)
    stopper.restore(model)
    return model


def _softmax_step(model, images, labels, classes, optimizer, chunk_size, device, amp, batch_total) -> float:
    """Cross-entropy over the batch, gradients accumulated chunk by chunk."""
    _, world = _rank_and_world()
    targets = torch.searchsorted(classes, labels.to(device))  # class ids -> 0..C-1
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    for c in torch.split(torch.arange(images.shape[0]), chunk_size):
        with autocast:
            emb = model(images[c].to(device, non_blocking=True))
            scores = emb if model.classifier is None else model.classifier(emb)
        loss = nn.functional.cross_entropy(scores.float(), targets[c.to(device)], reduction="sum")
        (loss / batch_total).backward()
        total += loss.detach()
    if world > 1:
        dist.all_reduce(total)
        allreduce_gradients(model.parameters())
    optimizer.step()
    return float(total) / batch_total
