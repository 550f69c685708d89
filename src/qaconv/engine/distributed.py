"""torch.distributed set-up for `torchrun -m qaconv train`: one process per device, NCCL or gloo."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from qaconv.device import resolve_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None) -> DistContext:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); pick this process's device.

    CUDA ranks use NCCL on cuda:LOCAL_RANK; CPU ranks use gloo. With more processes on a node
    than GPUs (NCCL refuses two ranks on one GPU) ranks share GPUs round-robin and use gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    base = resolve_device(device)
    if world <= 1:
        return DistContext(device=base)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "gloo"
    if base.type == "cuda":
        gpus = torch.cuda.device_count()
        base = torch.device("cuda", local_rank % gpus)
        torch.cuda.set_device(base)
        backend = "nccl" if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) <= gpus else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, device=base)


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a few numbers over all ranks (identity without distribution)."""
    if not ctx.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def shutdown(ctx: DistContext, finished: bool = True) -> None:
    """Leave the process group. After a run that `finished` on every rank, the ranks first wait for each other
    (rank 0 alone evaluates), so no rank exits while another still talks to it: a rank whose peer has gone
    can abort at exit inside the backend's threads ("terminate called without an active exception")."""
    if ctx.enabled and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
