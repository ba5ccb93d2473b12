"""A worker of the two-process data-parallel test (spawned; gloo on the CPU)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from tests.test_training import make_batch, make_model


def step_worker(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from dscl.training import chunked_dscl_step

    model = make_model()
    images, labels = make_batch()
    share = torch.tensor_split(torch.arange(len(labels)), world)[rank]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = chunked_dscl_step(model, images[share], labels[share], optimizer, chunk_size=5,
                             device=torch.device("cpu"))
    if rank == 0:
        torch.save({"state": model.state_dict(), "loss": loss}, out)
    dist.destroy_process_group()


def bucket_worker(rank: int, world: int, store: str, out: str) -> None:
    """Gradients that differ per process, one missing on rank 1 only and one missing
    everywhere, summed by :func:`dscl.training.allreduce_gradients` in small buckets."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    from dscl.training import allreduce_gradients

    params = [torch.nn.Parameter(torch.zeros(shape)) for shape in ((3, 4), (5,), (2, 2), (7,))]
    for i, p in enumerate(params):
        p.grad = torch.full_like(p, float((rank + 1) * (i + 1)))
    if rank == 1:
        params[2].grad = None  # an empty share: no gradient on this process
    params[3].grad = None  # no gradient anywhere
    calls = allreduce_gradients(params, bucket_bytes=60)  # 15 floats per bucket
    if rank == 0:
        torch.save({"grads": [None if p.grad is None else p.grad for p in params], "calls": calls}, out)
    dist.destroy_process_group()
