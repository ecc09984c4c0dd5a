"""How do data-parallel ranks talk? A small communicator: sum tensors over ranks, broadcast, wait for all.

`LocalComm` is one process (every operation the identity); `TorchComm` is torch.distributed (gloo on CPU, NCCL on
GPUs) in a process group started by torchrun (or by a test's spawned processes)."""

from __future__ import annotations

import os
from typing import Any, Protocol

import torch
from torch import Tensor


class Comm(Protocol):
    rank: int
    world: int

    def all_reduce_sum(self, tensor: Tensor) -> None:
        """In place: every rank's `tensor` becomes the sum over ranks."""
        ...

    def broadcast_object(self, obj: Any, src: int = 0) -> Any: ...

    def barrier(self) -> None: ...


class LocalComm:
    """One process, no peers."""

    rank, world = 0, 1

    def all_reduce_sum(self, tensor: Tensor) -> None:
        return None

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        return obj

    def barrier(self) -> None:
        return None


class TorchComm:
    """torch.distributed's default process group (already initialised)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def all_reduce_sum(self, tensor: Tensor) -> None:
        self.dist.all_reduce(tensor, op=self.dist.ReduceOp.SUM)

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        self.dist.barrier()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def start_process_group(backend: str = "auto", device: str = "auto") -> tuple[Comm, torch.device]:
    """The communicator and this rank's device: under torchrun a process group (NCCL and cuda:LOCAL_RANK where CUDA
    is and `device` is not cpu, else gloo on the CPU); otherwise one local process on `device`."""
    from faithfusion.utils.device import resolve_device

    cuda = resolve_device(device).type == "cuda"
    if not launched_by_torchrun():
        return LocalComm(), resolve_device(device)
    import torch.distributed as dist

    backend = ("nccl" if cuda else "gloo") if backend == "auto" else backend
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return TorchComm(), device


def end_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
