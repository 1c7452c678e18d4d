"""``random_drop``: the random-drop control at any cost profile (equal-budget comparisons of bench/accuracy.py).

Config: ``method=dict(type='random_drop', budget=f)`` (every epoch trains ``ceil(f N)``) or
``fractions=[f_1, ..., f_E]`` (epoch e trains ``ceil(f_e N)``, e.g. a loss-driven method's achieved
per-epoch cost, read from its log.jsonl). Each epoch's subset is a fresh uniform random draw
(``pretrain.selection.dar.select_random``) from a generator seeded by ``(seed, epoch)``: the same on
every rank and after a resume, with nothing but the subset to checkpoint. Unlike ``fixed_subset``
(one subset for the whole run) every sample gets its chance; unlike ``dar_random`` the profile is free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..selection.dar import keep_count, select_random
from ..selection.samplers import SubsetSampler, UniformSampler, derive_seed
from .base import BudgetParams, EpochResult, Plan, SubsetMethod, register_method, same_on_all_ranks


@dataclass(frozen=True)
class RandomDropConfig(BudgetParams):
    """``method=dict(type='random_drop', budget=<fraction per epoch>)`` or ``fractions=[<one per epoch>]``."""

    method_name: ClassVar[str] = "random_drop"
    label: ClassVar[str] = ""


@register_method("random_drop")
class RandomDrop(SubsetMethod):
    """Random-drop control: each epoch a fresh uniform random ceil(f_e N) of the data (budget= or fractions=[...])."""

    Params = RandomDropConfig

    def plan(self) -> Plan:
        return self.subset_plan([keep_count(self.run.num_samples, self.params.fraction(e))
                                 for e in range(1, self.run.epochs + 1)])

    def draw(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s subset (sorted), a function of (seed, epoch) only."""
        g = torch.Generator().manual_seed(derive_seed(self.run.seed, "random_drop", epoch))
        return select_random(torch.arange(self.run.num_samples), self.params.fraction(epoch), g)

    def make_sampler(self) -> SubsetSampler:
        sampler = UniformSampler(self.run.num_samples, **self.sampler_kwargs())
        sampler.subset = self.draw(1)
        return sampler

    def end_epoch(self, epoch: int) -> EpochResult:
        if epoch < self.run.epochs:
            self.sampler.subset = self.draw(epoch + 1)
        same_on_all_ranks(self.sampler.subset, f"the random-drop subset after epoch {epoch}")
        return EpochResult()
