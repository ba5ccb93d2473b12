"""A worker of the two-process data-parallel test (spawned; gloo on the CPU)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from tests.unit.training.test_training import dscl_step, make_batch, make_model


def step_worker(rank: int, world: int, store: str, out: str) -> None:
    """One chunked DSCL step on this process's share of the batch, under DDP."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from dscl.training.distributed import data_parallel

    model = make_model()
    parallel = data_parallel(model)
    assert isinstance(parallel, torch.nn.parallel.DistributedDataParallel)
    images, labels = make_batch()
    share = torch.tensor_split(torch.arange(len(labels)), world)[rank]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = dscl_step(parallel, images[share], labels[share], optimizer, chunk_size=5)
    if rank == 0:
        torch.save({"state": model.state_dict(), "loss": loss}, out)
    dist.destroy_process_group()
