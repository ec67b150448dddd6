"""Training on several processes (one per GPU, or CPU processes) with PyTorch's own DistributedDataParallel.

    torchrun --standalone --nproc_per_node 2 -m vae_demo.training.train ...               # one machine
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m vae_demo.training.train ...

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them (a plain `python -m vae_demo.training.train`) this is a world of
one process and nothing here talks to anyone.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """rank 0 writes the checkpoint, the card, the log and the progress bars"""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def start(device: torch.device) -> World:
    """Join the process group torchrun describes (nccl on CUDA, gloo on the CPU); one GPU per local rank."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(device=device)
    if device.type == "mps":
        raise SystemExit("torchrun with several processes needs CUDA (nccl) or the CPU (gloo); pass --device cpu on a Mac.")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), device=device)


def sum_over_ranks(world: World, values: dict) -> dict:
    """{name: float} -> the same names, summed over every rank (a no-op for one process)"""
    if not world.distributed:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def average_gradients(world: World, module: torch.nn.Module) -> None:
    """Average a module's gradients over ranks by hand: for one that is not wrapped in DDP (FactorVAE's critic,
    which runs three forwards per backward, more than DDP's reducer allows)."""
    if not world.distributed:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world.size


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def stop(world: World) -> None:
    if world.distributed:
        dist.destroy_process_group()
