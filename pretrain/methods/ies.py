"""``ies``: instance-dependent early stopping (Yuan et al., ICLR 2025); the rule is ``pretrain/selection/ies.py``.

Config: ``method=dict(type='ies', threshold=1e-3, moving_average=3, window=1)``.

Each sample holds its last ``m + k + 2`` per-epoch losses. At the end of epoch e < E: (1) the epoch's
training records are gathered from all ranks (``selection.loss_table.LossTable``); (2) the samples
excluded in e are forwarded without training (``TrainerServices.forward_samples``: the epoch's training
transform, eval mode as the official code's ``model.eval()`` pass, every model state restored, each rank
a share, all results on every rank; counted in the FLOPs) so every sample has a loss for e; (3) the loss
is appended to each history and epoch e+1 excludes the samples whose averaged second differences fall
below the threshold -- a mastered sample whose loss moves again comes back. The histories, the
excluded set and the epoch's records are checkpointed, so a resume, also mid-epoch, continues exactly.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..selection.ies import IESParams, excluded_set, flops_lower_bound, push_losses
from ..selection.loss_table import LossTable
from .base import EpochResult, Plan, RunInfo, StepRecord, SubsetMethod, register_method, same_on_all_ranks


@register_method("ies")
class InstanceEarlyStopping(SubsetMethod):
    """IES: a sample leaves training when the averaged second difference of its loss is below threshold; still forwarded, it can come back."""

    Params = IESParams  # the pure rule's parameters are the config keys
    has_cross_rank_state = True  # the loss table gathered from every rank

    def __init__(self, params: IESParams, run: RunInfo) -> None:
        super().__init__(params, run)
        n = run.num_samples
        self.history = torch.full((n, params.history_length), math.nan, dtype=torch.float32)  # oldest first
        self.excluded = torch.empty(0, dtype=torch.int64)  # out of training in the epoch in progress
        self.losses = LossTable(n)  # this epoch's training records, all ranks
        # every rank trains at least 2 samples (BatchNorm cannot train on one): never exclude all
        self.min_train = min(n, 2 * run.world_size)

    def plan(self) -> Plan:
        run, p = self.run, self.params
        first = p.history_length + 1
        low = flops_lower_bound(run.num_samples, run.epochs, p, self.min_train)
        note = (f"IES: every sample trains epochs 1-{min(first - 1, run.epochs)} (m + k + 2 = {p.history_length} "
                f"losses before a sample can be judged); from epoch {first} on mastered samples leave, each costing "
                f"a forward (1/3 of a trained sample) per epoch; at least {100 * low:.1f}% of the FLOPs")
        return self.subset_plan([run.num_samples] * run.epochs, bound="at most", notes=(note,))

    def record(self, record: StepRecord) -> None:
        self.losses.record(record.indices, record.losses)

    def end_epoch(self, epoch: int) -> EpochResult:
        losses = self.losses.collect()["loss"]
        n = self.run.num_samples
        if epoch == self.run.epochs:  # nothing is selected any more: no forward pass
            self.excluded = torch.empty(0, dtype=torch.int64)
            self.sampler.subset = torch.arange(n, dtype=torch.int64)
            return EpochResult(log={"forwarded": 0, "next_excluded": 0, "returned": 0})
        before = self.excluded
        if before.numel():
            forwarded, _ = self.services.forward_samples(before)
            losses[before] = forwarded
        push_losses(self.history, losses)
        self.excluded = excluded_set(self.history, self.params, self.min_train)
        keep = torch.ones(n, dtype=torch.bool)
        keep[self.excluded] = False
        self.sampler.subset = torch.nonzero(keep).flatten()
        same_on_all_ranks(self.sampler.subset, f"the IES subset after epoch {epoch}")
        returned = int((~torch.isin(before, self.excluded)).sum())
        return EpochResult(log={"forwarded": int(before.numel()), "next_excluded": int(self.excluded.numel()),
                                "returned": returned})

    def state_dict(self) -> dict[str, Any]:  # collective: the loss table syncs
        return {**super().state_dict(), "params": self._settings(), "history": self.history.clone(),
                "excluded": self.excluded.clone(), "losses": self.losses.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if dict(state["params"]) != self._settings():
            raise ValueError(f"IES state is from other settings ({dict(state['params'])} vs {self._settings()})")
        super().load_state_dict(state)
        self.history = state["history"].to(torch.float32).clone()
        self.excluded = state["excluded"].to(torch.int64).clone()
        self.losses.load_state_dict(state["losses"])

    def _settings(self) -> dict[str, Any]:
        p = self.params
        return {"threshold": p.threshold, "moving_average": p.moving_average, "window": p.window}
