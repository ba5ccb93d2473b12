"""Data-parallel training under ``torchrun``: the process group, the gather of a batch's
embeddings, and the summed gradients.

Gradients are reduced by :class:`torch.nn.parallel.DistributedDataParallel`: its buckets
overlap the all-reduce with the backward pass, and ``no_sync()`` skips it on every chunk
of the chunked update but the last. Two points differ from DDP's defaults, both because
each process back-propagates its own rows of one whole-batch gradient G (Section 4.1 of
[1]), so the parameter gradient is the *sum* over processes, not the mean: a comm hook
sums the buckets, and buffers are not broadcast (batch norm is frozen, its statistics
identical on every process).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

import contextlib
import inspect
import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["data_parallel", "gather_rows", "init_distributed", "rank_and_world", "sync_context"]


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: torch.device) -> tuple[torch.device, int, int]:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1): NCCL
    with one GPU per process, gloo on the CPU. Returns ``(device, rank, world_size)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return device, 0, 1
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, dist.get_rank(), world


def gather_rows(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """All-gather tensors whose numbers of rows differ between processes (``sizes``)."""
    biggest = max(sizes)
    padded = x.new_zeros((biggest, *x.shape[1:]))
    padded[: x.shape[0]] = x
    out = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(out, padded)
    return torch.cat([o[:s] for o, s in zip(out, sizes)])


def _sum_hook(state, bucket):  # DDP checks the annotation of ``bucket``: left out
    """DDP comm hook: the bucket (a ``dist.GradBucket``) summed over processes (DDP's own
    hook averages)."""
    future = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return future.then(lambda f: f.value()[0])


def data_parallel(model: nn.Module) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel with summed gradients when a process
    group of several processes exists; ``model`` itself otherwise."""
    _, world = rank_and_world()
    if world == 1 or not any(p.requires_grad for p in model.parameters()):
        return model
    device = next(model.parameters()).device
    options = inspect.signature(nn.parallel.DistributedDataParallel).parameters
    # buffers (frozen batch norm) are not synchronised at every forward: the newer name first
    no_buffer_sync = (
        {"forward_sync_buffers": False} if "forward_sync_buffers" in options else {"broadcast_buffers": False}
    )
    ddp = nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None, **no_buffer_sync
    )
    ddp.register_comm_hook(None, _sum_hook)
    return ddp


def sync_context(model: nn.Module, last: bool):
    """DDP's ``no_sync()`` except on the ``last`` backward of a step (and a no-op for a
    module that is not DDP)."""
    if last or not isinstance(model, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()
