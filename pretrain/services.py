"""What the trainer offers a selection method (``pretrain.methods.base.TrainerServices``).

Counted scoring forwards, and a forward-only pass over dataset indices that leaves every model state as
it was and returns the same results on every rank (each rank forwards its share).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Services", "gather_rows"]


class Services:
    """The :class:`~pretrain.methods.base.TrainerServices` of one trainer."""

    def __init__(self, trainer: Trainer):
        self._trainer = trainer
        self.model: nn.Module = trainer.model
        self.device = trainer.env.device
        self.world_size, self.rank = trainer.env.world, trainer.env.rank

    def count_forwards(self, resolution: int, samples: int) -> None:
        forwards = self._trainer.meter.forwards
        forwards[int(resolution)] = forwards.get(int(resolution), 0) + int(samples)

    def forward_samples(self, indices: torch.Tensor, *, batch_stats: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        t = self._trainer
        indices = indices.detach().to("cpu", torch.int64).reshape(-1)
        positions = torch.arange(indices.numel())[self.rank::self.world_size]
        share = Subset(t.train_set, indices[positions].tolist())
        losses, logits = [], []
        from .feed import loader

        with torch.no_grad(), _untouched(self.model, batch_stats):
            for images, targets, _ in loader(share, t.cfg.data.batch_size, None, t.cfg.data.num_workers, 0):
                out = self.model(t.model_input(images)).float()
                losses.append(F.cross_entropy(out, targets.to(self.device), reduction="none").cpu())
                logits.append(out.cpu())
        num_classes = int(getattr(t.model, "num_classes", 0))
        mine_loss = torch.cat(losses) if losses else torch.empty(0)
        mine_logits = torch.cat(logits) if logits else torch.empty(0, num_classes)
        self.count_forwards(t.cfg.data.img_size, positions.numel())
        all_pos = gather_rows(positions[:, None]).reshape(-1)  # int64 all the way
        all_loss = gather_rows(mine_loss[:, None]).reshape(-1)
        all_logits = gather_rows(mine_logits)
        out_loss = torch.empty(indices.numel(), dtype=torch.float32)
        out_logits = torch.empty(indices.numel(), all_logits.shape[1], dtype=torch.float32)
        out_loss[all_pos], out_logits[all_pos] = all_loss, all_logits
        return out_loss, out_logits


@contextlib.contextmanager
def _untouched(model: nn.Module, batch_stats: bool) -> Iterator[None]:
    """Eval mode (or batch-statistics BatchNorm), every flag, buffer and RNG state restored afterwards."""
    from .selection.scoring import scoring_mode

    if batch_stats:
        with scoring_mode(model), torch.random.fork_rng(devices=_cuda(model)):
            yield
        return
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.random.fork_rng(devices=_cuda(model)):
            yield
    finally:
        for m, training in flags:
            m.training = training


def _cuda(model: nn.Module) -> list:
    p = next(model.parameters(), None)
    return [p.device] if p is not None and p.device.type == "cuda" else []


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's 2-D ``rows`` concatenated in rank order, on the CPU, dtype kept (collective; ranks
    may hold different numbers of rows)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows.cpu().clone()
    from .selection.distributed import _comm_device, gather_ints

    device, counts = _comm_device(), gather_ints(rows.shape[0])
    padded = torch.zeros(max(counts), rows.shape[1], dtype=rows.dtype, device=device)
    padded[: rows.shape[0]] = rows.to(device)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).cpu()

