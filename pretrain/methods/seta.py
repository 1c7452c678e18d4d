"""``seta``: SeTa, scale efficient training (Zhou et al., CVPR 2025); the rule is ``pretrain/selection/seta.py``.

Config: ``method=dict(type='seta', prune_ratio=0.0, num_group=5, window_scale=0.6, delta=0.875)`` (the
official ImageNet script's values).

A score table holds each sample's last training loss (NaN = never trained). At the end of epoch e the
epoch's records are gathered from all ranks (``selection.loss_table.LossTable``) and written into the
table; epoch e+1 then trains, when it prunes, the window of loss clusters of pruning epoch ``t = e`` over a
fresh random draw, else (annealing) a uniform random draw. Every draw comes from a generator seeded by
``(seed, epoch)`` and k-means from a seed of ``(seed, epoch)``, so all ranks choose the same subset with no
generator state to save; the table and the epoch's records are checkpointed, so a resume, also mid-epoch,
continues exactly. SeTa reads only training losses: no extra forward pass, nothing to count beyond the
trained samples.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..selection.loss_table import LossTable, keep_latest
from ..selection.samplers import SubsetSampler, UniformSampler, derive_seed
from ..selection.seta import SeTaParams, anneal_select, cost_bound, pruning_epochs, seta_select
from .base import EpochResult, Plan, RunInfo, StepRecord, SubsetMethod, register_method, same_on_all_ranks


@register_method("seta")
class SeTa(SubsetMethod):
    """SeTa: each epoch a random share of the data, clustered by last loss; a window of clusters slides from easy to hard, then annealing."""

    Params = SeTaParams  # the pure rule's parameters are the config keys
    has_cross_rank_state = True  # the loss table gathered from every rank

    def __init__(self, params: SeTaParams, run: RunInfo) -> None:
        super().__init__(params, run)
        self.scores = torch.full((run.num_samples,), math.nan, dtype=torch.float32)  # last training loss
        self.losses = LossTable(run.num_samples)  # this epoch's records, all ranks
        self.min_train = min(run.num_samples, 2 * run.world_size)  # BatchNorm needs 2 samples per rank

    def plan(self) -> Plan:
        run, p = self.run, self.params
        last = pruning_epochs(run.epochs, p.delta)
        note = (f"SeTa prunes in epochs 1-{last} (epoch 1 trains the whole random draw, later ones a window of "
                f"round({p.num_group} x {p.window_scale}) of {p.num_group} loss clusters), anneals in "
                f"{last + 1}-{run.epochs}; the bound is the random draw of every epoch" if last < run.epochs else
                "SeTa prunes in every epoch (epoch 1 the whole random draw); the bound is the random draw")
        return self.subset_plan(cost_bound(run.num_samples, run.epochs, p), bound="at most", notes=(note,))

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.run.seed, "seta", epoch))

    def choose(self, epoch: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Epoch ``epoch``'s subset from the current scores, and what to log about it."""
        if epoch > pruning_epochs(self.run.epochs, self.params.delta):
            kept = anneal_select(self.run.num_samples, self.params, self._generator(epoch))
            return kept, {"next_kept": int(kept.numel())}
        sel = seta_select(self.scores, self.params, epoch - 1, self._generator(epoch),
                          derive_seed(self.run.seed, "seta/kmeans", epoch), self.min_train)
        return sel.kept, {"next_kept": int(sel.kept.numel()), "next_groups": list(sel.group_sizes),
                          "next_window": list(sel.window), "next_unscored": sel.unscored}

    def make_sampler(self) -> SubsetSampler:
        sampler = UniformSampler(self.run.num_samples, **self.sampler_kwargs())
        sampler.subset = self.choose(1)[0]  # no scores yet: the whole first draw
        return sampler

    def record(self, record: StepRecord) -> None:
        self.losses.record(record.indices, record.losses)

    def end_epoch(self, epoch: int) -> EpochResult:
        keep_latest(self.scores, self.losses.collect()["loss"])
        if epoch == self.run.epochs:
            return EpochResult()
        self.sampler.subset, log = self.choose(epoch + 1)
        same_on_all_ranks(self.sampler.subset, f"the SeTa subset after epoch {epoch}")
        return EpochResult(log=log)

    def state_dict(self) -> dict[str, Any]:  # collective: the loss table syncs
        return {**super().state_dict(), "params": self._settings(), "scores": self.scores.clone(),
                "losses": self.losses.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if dict(state["params"]) != self._settings():
            raise ValueError(f"SeTa state is from other settings ({dict(state['params'])} vs {self._settings()})")
        super().load_state_dict(state)
        self.scores = state["scores"].to(torch.float32).clone()
        self.losses.load_state_dict(state["losses"])

    def _settings(self) -> dict[str, Any]:
        p = self.params
        return {"prune_ratio": p.prune_ratio, "num_group": p.num_group, "window_scale": p.window_scale,
                "delta": p.delta}
