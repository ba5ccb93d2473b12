"""One update of all trainable layers: the chunked update of Section 4.1 of [1] for a
batch objective, and the accumulated chunks of a loss that is a mean over examples
(softmax).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from dscl.objectives import Objective
from dscl.training.distributed import gather_rows, rank_and_world, sync_context
from dscl.training.guard import check_finite

__all__ = ["chunked_step", "freeze_batchnorm", "summed_step"]


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every batch-norm and dropout layer in eval mode.

    Batch norm then uses the ImageNet running statistics without updating them, and
    dropout is off, so both passes of :func:`chunked_step` compute the same function and
    the update does not depend on how the batch is chunked (nor, under ``torchrun``, on
    how it is shared between processes).
    """
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()


def chunked_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    objective: Objective,
    chunk_size: int,
    device: torch.device,
    amp: bool = False,
) -> float:
    """One update of all trainable layers on a batch objective, memory bounded by
    ``chunk_size``.

    Section 4.1 of [1]: (1) embed every sub-batch without a graph and concatenate them
    into F; (2) compute the gradient G of the loss for the whole batch once (DSCL: the
    closed form of Eq. 9; any other objective of :mod:`dscl.objectives`: one autograd
    pass on F alone); (3) embed each sub-batch again with a graph and back-propagate
    ``<F_i, G_i>``. The parameter gradient is the whole batch's, exactly.

    Under ``torchrun``, ``images``/``labels`` are this process's share of the batch and
    ``model`` is wrapped by :func:`dscl.training.distributed.data_parallel`: F and the
    labels are all-gathered, every process computes the same G, back-propagates its own
    rows, and DDP sums the parameter gradients on the last chunk; the update equals the
    single-process one up to float error.

    Parameters
    ----------
    images : uint8 Tensor of shape (m, c, h, w)
    labels : Tensor of shape (m,)
    objective : the batch objective

    Returns
    -------
    The loss on the whole batch, before the update.

    Raises
    ------
    dscl.training.guard.NonFiniteError
        The loss or a gradient is not finite; no parameter has changed.
    """
    rank, world = rank_and_world()
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
        f_all, y_all = gather_rows(f_local, sizes), gather_rows(y_local, sizes)
        offset = sum(sizes[:rank])
    else:
        f_all, y_all, offset = f_local, y_local, 0
    optimizer.zero_grad(set_to_none=True)
    # the whole batch's (n, d); an objective's own parameters (proxies) get theirs here
    loss, grad = objective.loss_and_gradient(f_all, y_all)
    grad = grad[offset : offset + f_local.shape[0]]  # this process's rows
    for i, c in enumerate(chunks):
        with sync_context(model, last=i == len(chunks) - 1):
            with autocast:
                f_chunk = model(images[c].to(device, non_blocking=True)).float()
            (f_chunk * grad[c.to(device)]).sum().backward()  # d<F_i, G_i>/dθ
    check_finite(loss, optimizer)
    optimizer.step()
    return float(loss)


def summed_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    objective: Objective,
    chunk_size: int,
    device: torch.device,
    amp: bool,
    batch_total: int,
) -> float:
    """One update of all trainable layers on an objective that is a mean over examples
    (:attr:`dscl.objectives.Objective.per_example`: softmax), memory bounded by
    ``chunk_size``: each chunk's share of the loss (its sum over ``batch_total``, the
    examples over every process) is back-propagated directly, the gradients accumulated.
    ``model`` may be DDP-wrapped. A non-finite loss or gradient raises
    :class:`~dscl.training.guard.NonFiniteError` before the update.

    Returns
    -------
    The loss on the whole batch, before the update.
    """
    _, world = rank_and_world()
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    chunks = torch.split(torch.arange(images.shape[0]), chunk_size)
    for i, c in enumerate(chunks):
        with sync_context(model, last=i == len(chunks) - 1):
            with autocast:
                emb = model(images[c].to(device, non_blocking=True))
                loss = objective.summed_loss(emb, labels[c].to(device))
            (loss / batch_total).backward()
        total += loss.detach()
    if world > 1:  # the objective's own parameters are outside DDP: their gradients summed here
        dist.all_reduce(total)
        for p in objective.module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
    check_finite(total, optimizer)
    optimizer.step()
    return float(total) / batch_total
