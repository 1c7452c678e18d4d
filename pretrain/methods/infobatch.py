"""``infobatch``: InfoBatch (Qin et al., ICLR 2024); the rule is ``pretrain/selection/infobatch.py``.

Config: ``method=dict(type='infobatch', prune_ratio=0.5, delta=0.875)``.

The score table holds each sample's last recorded training loss (unweighted, float32, NaN = never
trained). At the end of epoch e, if epoch e+1 prunes (``e+1 <= ceil(delta * E)``), the next subset is
every sample not well-learned plus a random ``floor((1 - r)|L|)`` of the well-learned L, those with
loss weight ``1 / (1 - r)``; the trainer trains on ``mean(w_i * l_i)``. Afterwards: all data, weight 1.

Distributed: each rank records its own batches in the one loss table (``pretrain.selection.loss_table``);
at the end of an epoch (and in ``state_dict``) the records are all-gathered with int64 indices and float32 losses (whatever the loss dtype: the official
code casts indices to the loss dtype, which under bf16 rounds every index above 256), the padding
repeats of ``DistributedSampler``-style sharding resolve to the genuine record (the first in rank
order), and every rank draws the same subset from the same generator state (checked after each epoch).
The generator and the tables are checkpointed, so a resume, also mid-epoch, draws what an
uninterrupted run draws.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..selection.infobatch import InfoBatchParams, cost_bound, infobatch_select, prunes, pruning_epochs
from ..selection.loss_table import LossTable, keep_latest, table_state
from ..selection.samplers import derive_seed
from .base import (
    Batch,
    EpochResult,
    Plan,
    RunInfo,
    StepInfo,
    StepRecord,
    SubsetMethod,
    register_method,
    same_on_all_ranks,
)


@register_method("infobatch")
class InfoBatch(SubsetMethod):
    """InfoBatch: each epoch prune r of the samples whose last loss is below the mean, weight the rest of them 1/(1-r)."""

    Params = InfoBatchParams  # the pure rule's parameters are the config keys
    has_cross_rank_state = True  # the loss table gathered from every rank

    def __init__(self, params: InfoBatchParams, run: RunInfo) -> None:
        super().__init__(params, run)
        n = run.num_samples
        self.scores = torch.full((n,), math.nan, dtype=torch.float32)  # last training loss per sample
        self.weights = torch.ones(n, dtype=torch.float32)  # loss weights of the epoch in progress
        self.weighted = False  # whether any weight of this epoch differs from 1
        self.generator = torch.Generator().manual_seed(derive_seed(run.seed, "infobatch"))
        self.losses = LossTable(n)  # this epoch's records, all ranks

    def plan(self) -> Plan:
        sizes, _ = cost_bound(self.run.num_samples, self.run.epochs, self.params)
        last = pruning_epochs(self.run.epochs, self.params.delta)
        span = f"epochs 2-{last}" if last >= 2 else "no epoch"
        note = (f"InfoBatch prunes in {span} (epoch 1 has no losses yet); the bound assumes all samples but one "
                "below the mean loss each time")
        return self.subset_plan(sizes, bound="at least", notes=(note,))

    def select(self, batch: Batch, step: StepInfo) -> Batch:
        if self.weighted:
            batch.weights = self.weights[batch.indices].to(batch.images.device, non_blocking=True)
        return batch

    def record(self, record: StepRecord) -> None:
        self.losses.record(record.indices, record.losses)

    def end_epoch(self, epoch: int) -> EpochResult:
        keep_latest(self.scores, self.losses.collect()["loss"])
        n, log = self.run.num_samples, {}
        if epoch < self.run.epochs and prunes(epoch + 1, self.run.epochs, self.params.delta):
            sel = infobatch_select(self.scores, self.params.prune_ratio, self.generator)
            self.sampler.subset = sel.kept
            self.weights = sel.weight_table(n)
            self.weighted = bool((sel.weights != 1).any())
            log = {"next_well_learned": sel.num_well_learned, "next_kept": int(sel.kept.numel())}
        else:
            self.sampler.subset = torch.arange(n, dtype=torch.int64)
            self.weights = torch.ones(n, dtype=torch.float32)
            self.weighted = False
        same_on_all_ranks(self.sampler.subset, f"the InfoBatch subset after epoch {epoch}")
        return EpochResult(log=log)

    def state_dict(self) -> dict[str, Any]:  # collective: syncs this epoch's records first
        return {**super().state_dict(), "params": {"prune_ratio": self.params.prune_ratio, "delta": self.params.delta},
                "scores": self.scores.clone(), "losses": self.losses.state_dict(),
                "weights": self.weights.clone(), "weighted": self.weighted,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = {"prune_ratio": self.params.prune_ratio, "delta": self.params.delta}
        if dict(state["params"]) != mine:
            raise ValueError(f"InfoBatch state is from other settings ({dict(state['params'])} vs {mine})")
        super().load_state_dict(state)
        self.scores = state["scores"].to(torch.float32).clone()
        self.losses.load_state_dict(table_state(state, "losses", "epoch_losses", self.losses.columns))
        self.weights = state["weights"].to(torch.float32).clone()
        self.weighted = bool(state["weighted"])
        self.generator.set_state(state["generator"])
