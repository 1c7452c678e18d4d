"""The process's place in a run: rank, world size and device, from the torchrun (or slurm) environment.

gloo on CPU, NCCL on GPU. Every helper here is collective when a process group exists and a plain
local operation without one, so the single-process path runs the same code.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from dar_common.process_group import init_process_group

__all__ = ["Env", "all_gather_objects", "all_sum", "first_error", "init_distributed", "same_on_all_ranks"]


@dataclass
class Env:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def init_distributed(launcher: str = "none") -> Env:
    """Join the process group described by the torchrun (or slurm) environment; gloo on CPU, NCCL on GPU."""
    if launcher == "slurm":  # same mapping as mmengine's slurm launcher
        os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
        os.environ.setdefault("WORLD_SIZE", os.environ["SLURM_NTASKS"])
        os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
        os.environ.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in os.environ:
            nodes = os.environ["SLURM_NODELIST"]
            os.environ["MASTER_ADDR"] = subprocess.getoutput(f"scontrol show hostname {nodes} | head -n1")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if world > 1 or launcher != "none":
        if cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            init_process_group("nccl" if cuda else "gloo")
        return Env(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return Env(device=device)


def first_error(message: str | None) -> str | None:
    """The first rank's error message on every rank (collective), so all ranks stop together."""
    if not dist.is_initialized():
        return message
    messages: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(messages, message)
    return next((m for m in messages if m), None)


def all_sum(values: list[float], env: Env) -> list[float]:
    """Element-wise sum over ranks, in float64."""
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    if dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def all_gather_objects(obj: Any, env: Env) -> list[Any]:
    """Every rank's ``obj``, in rank order (collective)."""
    if env.world == 1:
        return [obj]
    out: list[Any] = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def same_on_all_ranks(tensor: torch.Tensor, what: str) -> None:
    """Raise on every rank unless all ranks hold the same ``tensor`` (collective; compares digests)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    digest = hashlib.blake2b(tensor.cpu().numpy().tobytes(), digest_size=8).hexdigest()
    digests: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks disagree on {what}: digests {digests}")
