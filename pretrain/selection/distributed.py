"""Gather per-sample records from all ranks, and merge them into a loss table."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["comm_device", "gather_ints", "gather_records", "gather_rows", "is_distributed", "scatter_into_table",
           "world_info"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_info(num_replicas: int | None = None, rank: int | None = None) -> tuple[int, int]:
    """``(num_replicas, rank)``: the explicit values, else the process group's, else ``(1, 0)``."""
    if num_replicas is None:
        num_replicas = dist.get_world_size() if is_distributed() else 1
    if rank is None:
        rank = dist.get_rank() if is_distributed() else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"invalid rank {rank} for num_replicas {num_replicas}")
    return num_replicas, rank


def comm_device() -> torch.device:
    """Where collective tensors live: the current CUDA device under NCCL (it moves only CUDA tensors), else
    the CPU (gloo, and the CPU side of mixed backends)."""
    if "nccl" in str(dist.get_backend()) and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_records(indices: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' ``(index, loss)`` records, concatenated in rank order, on the CPU.

    Ranks may hold different numbers of records: sizes are exchanged first and every rank pads to the
    largest. Indices travel as int64 (never through a float), losses as float32. This is a collective
    call: every rank must call it. Without a process group it returns CPU copies of its inputs.
    """
    if indices.shape != losses.shape or indices.dim() != 1:
        raise ValueError(f"indices {tuple(indices.shape)} and losses {tuple(losses.shape)} must be equal 1-D")
    indices = indices.detach().to(torch.int64)
    losses = losses.detach().to(torch.float32)
    if not is_distributed() or dist.get_world_size() == 1:
        return indices.cpu().clone(), losses.cpu().clone()
    device, world = comm_device(), dist.get_world_size()
    size = torch.tensor([indices.numel()], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)

    def padded(t: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(longest, dtype=t.dtype, device=device)
        out[: t.numel()] = t.to(device)
        return out

    idx_parts = [torch.empty(longest, dtype=torch.int64, device=device) for _ in range(world)]
    loss_parts = [torch.empty(longest, dtype=torch.float32, device=device) for _ in range(world)]
    dist.all_gather(idx_parts, padded(indices))
    dist.all_gather(loss_parts, padded(losses))
    all_idx = torch.cat([p[:c] for p, c in zip(idx_parts, counts, strict=True)]).cpu()
    all_loss = torch.cat([p[:c] for p, c in zip(loss_parts, counts, strict=True)]).cpu()
    return all_idx, all_loss


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's 2-D ``rows`` concatenated in rank order, on the CPU, dtype kept (collective; ranks
    may hold different numbers of rows). Without a process group: a CPU copy of ``rows``."""
    if not is_distributed() or dist.get_world_size() == 1:
        return rows.cpu().clone()
    device, counts = comm_device(), gather_ints(rows.shape[0])
    padded = torch.zeros(max(counts), rows.shape[1], dtype=rows.dtype, device=device)
    padded[: rows.shape[0]] = rows.to(device)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).cpu()


def gather_ints(value: int) -> list[int]:
    """One integer from every rank, in rank order (collective); ``[value]`` without a process group."""
    if not is_distributed():
        return [int(value)]
    device = comm_device()
    mine = torch.tensor([int(value)], dtype=torch.int64, device=device)
    parts = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, mine)
    return [int(p.item()) for p in parts]


def scatter_into_table(table: torch.Tensor, indices: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """Write records into a NaN-initialised loss table in place; the first record of an index wins.

    "First" means first in the given order and only among entries that are still NaN, so a value already
    in the table is never overwritten. The samplers remove padding duplicates before this; the rule makes
    any remaining duplicate (e.g. a loader iterated twice) resolve deterministically.
    """
    if indices.numel() == 0:
        return table
    if int(indices.min()) < 0 or int(indices.max()) >= table.numel():
        raise ValueError(f"record index out of range [0, {table.numel()})")
    idx = indices.to(torch.int64)
    if int(torch.bincount(idx, minlength=table.numel()).max()) <= 1:
        # no duplicates (the usual case): every record is its index's first, no unique() sort needed
        empty = torch.isnan(table[idx])
        table[idx[empty]] = losses.to(table.dtype)[empty]
        return table
    # positions of the first occurrence of each distinct index
    uniq, inverse = torch.unique(idx, return_inverse=True)
    pos = torch.arange(idx.numel(), dtype=torch.int64)
    first = torch.full((uniq.numel(),), idx.numel(), dtype=torch.int64).scatter_reduce(
        0, inverse, pos, reduce="amin"
    )
    keep_idx, keep_loss = idx[first], losses.to(table.dtype)[first]
    empty = torch.isnan(table[keep_idx])
    table[keep_idx[empty]] = keep_loss[empty]
    return table
