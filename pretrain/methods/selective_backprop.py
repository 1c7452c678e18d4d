"""``selective_backprop``: Selective Backprop in Composer's form; the rule is ``pretrain/selection/selective_backprop.py``.

Config: ``method=dict(type='selective_backprop', start=0.5, end=0.9, keep=0.5, scale_factor=1.0, interrupt=2)``.

On a selecting step (``start <= t/T < end``, except every ``interrupt``-th batch of an epoch) the loaded
batch is scored with no gradient at ``floor(scale_factor * r)`` px by ``pretrain.selection.scoring.
score_losses`` (BatchNorm on batch statistics, dropout off, every parameter, buffer, flag and RNG state
restored bit-exactly: Composer scores in train mode, so BN running statistics absorb the scoring images),
and ``int(keep * b)`` samples are trained, unweighted, drawn toward high loss (sizes and counts in
Composer's float arithmetic). A batch that would keep fewer than 2 samples trains in full (BatchNorm
cannot train on one sample). The scoring forwards count in the cost; ``plan()`` is closed-form.

Distributed: selection is per device, as in Composer: each rank scores and draws within its own batch.
Each rank draws from its own generator (seeded by ``(seed, rank)``) saved in its rank state, so a
resume, also mid-epoch, makes the same draws (a mid-epoch resume needs the same world size).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..cost import TRAIN_FLOPS_PER_FORWARD
from ..selection.samplers import derive_seed
from ..selection.scoring import score_losses
from ..selection.selective_backprop import (
    SelectiveBackpropParams,
    kept_count,
    score_resolution,
    select_by_loss,
    selecting_batches,
    selects,
)
from .base import (
    Batch,
    EpochStats,
    EpochTotals,
    Plan,
    RunInfo,
    StepInfo,
    SubsetMethod,
    register_method,
)


@register_method("selective_backprop")
class SelectiveBackprop(SubsetMethod):
    """Selective Backprop (Composer): from start to end of training, score each batch and train on keep of it, drawn toward high loss."""

    Params = SelectiveBackpropParams  # the pure rule's parameters are the config keys
    has_cross_rank_state = True  # a generator per rank

    def __init__(self, params: SelectiveBackpropParams, run: RunInfo) -> None:
        super().__init__(params, run)
        self.resolution = score_resolution(run.img_size, self.params.scale_factor)
        self.per_rank = math.ceil(run.num_samples / run.world_size)  # a full-data epoch's shard, padded
        self.generator = torch.Generator().manual_seed(derive_seed(run.seed, f"selective_backprop/{run.rank}"))

    def batch_sizes(self) -> list[int]:
        """Per-rank batch sizes of one epoch (the feed's: full batches, a last single sample folded)."""
        from ..feed import fold_tail_batches

        b, steps = self.run.batch_size, fold_tail_batches(self.per_rank, self.run.batch_size)
        return [b] * (steps - 1) + [self.per_rank - b * (steps - 1)]

    def _keeps(self, step: int, total: int, batch_in_epoch: int, n: int) -> int | None:
        """Samples kept of a batch of ``n`` at this step, or None when it trains in full."""
        if not selects(step, total, batch_in_epoch, self.params):
            return None
        return self._kept(n)

    def _kept(self, n: int) -> int | None:
        k = kept_count(n, self.params.keep)
        return k if k >= 2 else None

    def train_batch_sizes(self) -> tuple[int, ...]:
        """A selecting step trains ``int(keep * b)`` samples (a smaller last batch keeps fewer: padded up to
        it), the other steps the full batch b: padded (``runtime.pad_batches``) to the kept size, a
        selecting step keeps its saving."""
        b = self.run.batch_size
        k = self._kept(b)
        return (b,) if k is None else (k, b)

    def plan(self) -> Plan:
        """Exact sizes from the closed-form schedule: per epoch a few integer operations, whatever the
        number of steps (ImageNet's 600k steps plan as fast as the tiny run's)."""
        run, sizes = self.run, self.batch_sizes()
        steps, total = len(sizes), run.epochs * len(sizes)
        # batches 0 .. S-2 hold b samples, batch S-1 the rest (the feed folds a single last sample in)
        body_n, last_n = run.batch_size, sizes[-1]
        body_k, last_k = self._kept(body_n), self._kept(last_n)
        trained, scored = [], 0
        for e in range(run.epochs):
            body, last = selecting_batches(e, steps, total, self.params)
            dropped = 0
            if body_k is not None:
                dropped += body * (body_n - body_k)
                scored += body * body_n
            if last and last_k is not None:
                dropped += last_n - last_k
                scored += last_n
            trained.append(run.num_samples - run.world_size * dropped)
        scoring = run.world_size * scored * (self.resolution / run.img_size) ** 2 / TRAIN_FLOPS_PER_FORWARD
        flops = (sum(trained) + scoring) / (run.epochs * run.num_samples)
        note = (f"scoring at {self.resolution} px: {run.world_size * scored} samples forwarded without training "
                f"(counted in FLOPs, analytic (r'/r)^2 scaling here; the run counts them)")
        return Plan(self.name, run.epochs, run.epochs, tuple(trained), run.num_samples, flops, notes=(note,))

    def select(self, batch: Batch, step: StepInfo) -> Batch:
        n = batch.indices.numel()
        k = self._keeps(step.global_step, step.steps_in_epoch * self.run.epochs, step.step_in_epoch, n)
        if k is None:
            return batch
        losses = score_losses(self.services.model, batch.images, batch.targets, self.resolution)
        self.services.count_forwards(self.resolution, n)
        return batch.take(select_by_loss(losses, self.params.keep, self.generator))

    def epoch_stats(self, epoch: int, totals: EpochTotals) -> EpochStats:
        # all ranks trained totals.trained, the sharding's padding repeats included: take those out
        padding = self.run.world_size * self.per_rank - self.run.num_samples
        trained = totals.trained - padding
        return EpochStats(trained, trained / self.run.num_samples)

    def rank_state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "rank": self.run.rank}

    def load_rank_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["rank"]) != self.run.rank:
            raise ValueError(f"Selective Backprop state of rank {state['rank']} loaded on rank {self.run.rank}")
        self.generator.set_state(state["generator"])
