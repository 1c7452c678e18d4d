"""``rs2``: RS2 without replacement (Okanovic et al., ICLR 2024); the rule is ``pretrain/selection/rs2.py``.

Config: ``method=dict(type='rs2', budget=f)`` (every epoch trains ``ceil(f N)``) or
``fractions=[f_1, ..., f_E]`` (epoch e trains ``ceil(f_e N)``; ``bench/accuracy.py`` gives it a
loss-driven run's achieved per-epoch FLOPs, making it the strongest random control at equal cost).

Each epoch trains the next slice of a random permutation of the data; a new permutation (cycle) starts
when one is used up, so every sample is trained once per cycle (the last epoch of a cycle fills up with
samples of its first) -- the difference from ``random_drop``, whose epochs draw independently. The subset of an epoch is a function
of ``(seed, sizes, epoch)`` alone: the same on every rank, after a resume, for any world size, with
nothing to checkpoint beyond the sampler's subset. No loss is read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..selection.rs2 import rs2_subset, subset_sizes
from ..selection.samplers import SubsetSampler, UniformSampler
from .base import BudgetParams, EpochResult, Plan, RunInfo, SubsetMethod, register_method, same_on_all_ranks


@dataclass(frozen=True)
class RS2Config(BudgetParams):
    """``method=dict(type='rs2', budget=<fraction per epoch>)`` or ``fractions=[<one per epoch>]``."""

    method_name: ClassVar[str] = "rs2"
    label: ClassVar[str] = "RS2"


@register_method("rs2")
class RS2(SubsetMethod):
    """RS2 without replacement: each epoch the next ceil(f_e N) of a random permutation, a new one when it is used up."""

    Params = RS2Config

    def __init__(self, params: RS2Config, run: RunInfo) -> None:
        super().__init__(params, run)
        self.sizes = subset_sizes(run.num_samples, params.per_epoch(run.epochs))

    def plan(self) -> Plan:
        n, sizes = self.run.num_samples, self.sizes
        if len(set(sizes)) == 1 and n % sizes[0] == 0:
            note = f"RS2 without replacement: every sample exactly once per {n // sizes[0]} epochs"
        elif len(set(sizes)) == 1:
            note = (f"RS2 without replacement: every sample once per {-(-n // sizes[0])} epochs, the last of "
                    f"which fills up with {sizes[0] - n % sizes[0]} samples of the cycle's first")
        else:
            note = "RS2 without replacement: a new random permutation whenever the previous one is used up"
        return self.subset_plan(list(sizes), notes=(note,))

    def draw(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s subset (sorted), a function of (seed, sizes, epoch) only."""
        return rs2_subset(self.run.num_samples, self.sizes, epoch, self.run.seed)

    def make_sampler(self) -> SubsetSampler:
        sampler = UniformSampler(self.run.num_samples, **self.sampler_kwargs())
        sampler.subset = self.draw(1)
        return sampler

    def end_epoch(self, epoch: int) -> EpochResult:
        if epoch < self.run.epochs:
            self.sampler.subset = self.draw(epoch + 1)
        same_on_all_ranks(self.sampler.subset, f"the RS2 subset after epoch {epoch}")
        return EpochResult()
