"""``kakurenbo``: KAKURENBO (Nguyen et al., NeurIPS 2023); the rule is ``pretrain/selection/kakurenbo.py``.

Config: ``method=dict(type='kakurenbo', max_fraction=0.3, tau=0.7, warmup_epochs=5,
milestones=(1/3, 2/3, 8/9), factors=(1.0, 0.8, 0.6, 0.4))``.

Three tables hold each sample's loss, correctness and confidence (max softmax probability) at its last
forward: the training forward for trained samples, the refresh pass for hidden ones. At the end of
epoch e < E: (1) all ranks' records are gathered (the loss table, ``pretrain.selection.loss_table``: int64
indices; padding repeats resolve to the genuine, first record); (2) a forward-only pass over the samples hidden in e (``TrainerServices.forward_samples``:
the epoch's training transform, eval mode -- BatchNorm on its running statistics, so a sample's result
does not depend on how the hidden set is batched or sharded --, every model state restored; each rank
forwards a share and all get all results; counted in the cost) refreshes
their entries; (3) the next epoch hides, among the ``floor(F_e N)`` lowest losses, those predicted
correctly with confidence >= tau. Each epoch's learning rates are multiplied by ``1 / (1 - F_e)``.
The tables and the hidden set are checkpointed, so a resume, also mid-epoch, continues exactly.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..cost import TRAIN_FLOPS_PER_FORWARD
from ..selection.kakurenbo import (
    KakurenboParams,
    cost_bound,
    hidden_fraction,
    hide_set,
    lr_factor,
    prediction_stats,
)
from ..selection.loss_table import LossTable, keep_latest, table_state
from .base import (
    EpochResult,
    Plan,
    RunInfo,
    StepRecord,
    SubsetMethod,
    register_method,
    same_on_all_ranks,
)

RECORDED = ("loss", "correct", "confidence", "label")  # per sample, at its last forward


@register_method("kakurenbo")
class Kakurenbo(SubsetMethod):
    """KAKURENBO: each epoch hide the lowest-loss samples predicted correctly with confidence >= tau (at most F), LR x 1/(1-F)."""

    Params = KakurenboParams  # the pure rule's parameters are the config keys
    has_cross_rank_state = True  # the record tables gathered from every rank, the refresh pass shared out

    def __init__(self, params: KakurenboParams, run: RunInfo) -> None:
        super().__init__(params, run)
        # float32 tables, NaN = no forward yet: loss, correctness (0/1), confidence, label (class index)
        self.tables = self._empty_tables()
        self.hidden = torch.empty(0, dtype=torch.int64)  # hidden in the epoch in progress
        self.records = LossTable(run.num_samples, RECORDED)  # this epoch's training records, all ranks

    def _empty_tables(self) -> dict[str, torch.Tensor]:
        return {k: torch.full((self.run.num_samples,), math.nan, dtype=torch.float32) for k in RECORDED}

    def plan(self) -> Plan:
        run = self.run
        trained, refreshed = cost_bound(run.num_samples, run.epochs, self.params)
        flops = (sum(trained) + sum(refreshed) / TRAIN_FLOPS_PER_FORWARD) / (run.epochs * run.num_samples)
        factors = sorted({round(lr_factor(e, run.epochs, self.params), 4) for e in range(1, run.epochs + 1)})
        note = (f"KAKURENBO hides at most F_e of the data per epoch and refreshes the hidden samples with a "
                f"forward pass (counted in FLOPs); LR factors 1/(1-F_e): {', '.join(map(str, factors))}")
        return Plan(self.name, run.epochs, run.epochs, tuple(trained), run.num_samples, flops, bound="at least",
                    notes=(note,))

    def lr_factor(self, epoch: int) -> float:
        return lr_factor(epoch, self.run.epochs, self.params)

    def record(self, record: StepRecord) -> None:
        self.records.record(record.indices, *self._values(record.losses, record.logits, record.targets).unbind(1))

    @staticmethod
    def _values(losses: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``[n, 4]`` float32 rows in ``RECORDED`` order (labels < 2^24 are exact in float32)."""
        correct, confidence = prediction_stats(logits, targets)
        labels = (targets.argmax(dim=1) if targets.dim() == 2 else targets).detach().cpu()
        return torch.stack([losses.detach().reshape(-1).to("cpu", torch.float32), correct.to(torch.float32),
                            confidence.to(torch.float32), labels.to(torch.float32)], dim=1)

    def refresh(self) -> int:
        """The forward-only pass over this epoch's hidden samples; returns how many it forwarded (collective)."""
        hidden = self.hidden
        if hidden.numel() == 0:
            return 0
        losses, logits = self.services.forward_samples(hidden)
        labels = self.tables["label"][hidden].to(torch.int64)  # a hidden sample has been trained: label known
        rows = self._values(losses, logits, labels)
        for column, key in enumerate(RECORDED):
            self.tables[key][hidden] = rows[:, column]
        return int(hidden.numel())

    def end_epoch(self, epoch: int) -> EpochResult:
        epoch_tables = self.records.collect()
        for key in RECORDED:
            keep_latest(self.tables[key], epoch_tables[key])
        last = epoch == self.run.epochs
        refreshed = 0 if last else self.refresh()  # after the last epoch nothing is selected any more
        if not last:
            f = hidden_fraction(epoch + 1, self.run.epochs, self.params)
            t = self.tables
            self.hidden = hide_set(t["loss"], t["correct"] > 0.5, t["confidence"], f, self.params.tau)
        else:
            self.hidden = torch.empty(0, dtype=torch.int64)
        keep = torch.ones(self.run.num_samples, dtype=torch.bool)
        keep[self.hidden] = False
        self.sampler.subset = torch.nonzero(keep).flatten()
        same_on_all_ranks(self.sampler.subset, f"the KAKURENBO subset after epoch {epoch}")
        return EpochResult(log={"refreshed": refreshed, "lr_factor": self.lr_factor(epoch),
                                "next_hidden": int(self.hidden.numel())})

    def state_dict(self) -> dict[str, Any]:  # collective: syncs this epoch's records first
        return {**super().state_dict(), "params": self._settings(), "hidden": self.hidden.clone(),
                "tables": {k: v.clone() for k, v in self.tables.items()}, "records": self.records.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if dict(state["params"]) != self._settings():
            raise ValueError(f"KAKURENBO state is from other settings ({dict(state['params'])} vs {self._settings()})")
        super().load_state_dict(state)
        self.hidden = state["hidden"].to(torch.int64).clone()
        self.tables = {k: state["tables"][k].to(torch.float32).clone() for k in RECORDED}
        self.records.load_state_dict(table_state(state, "records", "epoch_tables", self.records.columns))

    def _settings(self) -> dict[str, Any]:
        c = self.params
        return {"max_fraction": c.max_fraction, "tau": c.tau, "warmup_epochs": c.warmup_epochs,
                "milestones": tuple(c.milestones), "factors": tuple(c.factors)}
