"""What the trainer offers a selection method (``pretrain.methods.base.TrainerServices``).

Counted scoring forwards, and a forward-only pass over dataset indices that leaves every model state as
it was and returns the same results on every rank (each rank forwards its share).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset

from .env import Env
from .feed import loader
from .selection.distributed import gather_rows
from .selection.scoring import scoring_mode

__all__ = ["Services"]


class Services:
    """The :class:`~pretrain.methods.base.TrainerServices` of one run, built from explicit parts.

    ``model`` is the plain (DDP-unwrapped) module, ``dataset`` the training set, ``model_input`` what turns a
    loaded batch into model input on the device (the trainer's ``model_input``), ``count_forwards`` where
    scoring forwards are counted (the trainer's epoch meter).
    """

    def __init__(self, model: nn.Module, env: Env, dataset: Dataset, model_input: Callable[[torch.Tensor], torch.Tensor],
                 *, batch_size: int, workers: int, img_size: int, count_forwards: Callable[[int, int], Any]):
        self.model, self.device = model, env.device
        self.world_size, self.rank = env.world, env.rank
        self.dataset, self.model_input = dataset, model_input
        self.batch_size, self.workers, self.img_size = batch_size, workers, img_size
        self._count = count_forwards

    def count_forwards(self, resolution: int, samples: int) -> None:
        self._count(int(resolution), int(samples))

    def forward_samples(self, indices: torch.Tensor, *, batch_stats: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        indices = indices.detach().to("cpu", torch.int64).reshape(-1)
        positions = torch.arange(indices.numel())[self.rank::self.world_size]
        share = Subset(self.dataset, indices[positions].tolist())
        losses, logits = [], []
        with torch.no_grad(), _untouched(self.model, batch_stats):
            for images, targets, _ in loader(share, self.batch_size, None, self.workers, 0):
                out = self.model(self.model_input(images)).float()
                losses.append(F.cross_entropy(out, targets.to(self.device), reduction="none").cpu())
                logits.append(out.cpu())
        num_classes = int(getattr(self.model, "num_classes", 0))
        mine_loss = torch.cat(losses) if losses else torch.empty(0)
        mine_logits = torch.cat(logits) if logits else torch.empty(0, num_classes)
        self.count_forwards(self.img_size, positions.numel())
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
