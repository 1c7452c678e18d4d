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

import torch

from ..errors import ConfigError
from ..selection.dar import keep_count, select_random
from ..selection.samplers import SubsetSampler, UniformSampler, derive_seed
from .base import EpochResult, MethodParams, Plan, RunInfo, SubsetMethod, register_method, same_on_all_ranks


def _fraction(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1


@dataclass(frozen=True)
class RandomDropConfig(MethodParams):
    """``method=dict(type='random_drop', budget=<fraction>)`` or ``fractions=[<one per epoch>]``."""

    budget: float | None = None
    fractions: tuple[float, ...] | None = None

    def validate(self, run: RunInfo | None) -> None:
        if (self.budget is None) == (self.fractions is None):
            raise ConfigError("random_drop needs exactly one of method.budget=<fraction> or "
                              "method.fractions=[<one fraction per epoch>]")
        if self.budget is not None and not _fraction(self.budget):
            raise ConfigError(f"method.budget must be a fraction in (0, 1], got {self.budget!r}")
        if self.fractions is not None:
            bad = [f for f in self.fractions if not _fraction(f)]
            if bad:
                raise ConfigError(f"method.fractions must be fractions in (0, 1], got {bad[0]!r}")
            if run is not None and len(self.fractions) != run.epochs:
                raise ConfigError(f"method.fractions needs one fraction per epoch ({run.epochs}), "
                                  f"got {len(self.fractions)}")

    def fraction(self, epoch: int) -> float:
        return float(self.budget) if self.budget is not None else float(self.fractions[epoch - 1])


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
