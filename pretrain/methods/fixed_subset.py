"""``fixed_subset``: one random subset of the budget's size, drawn once, trained every epoch (a control)."""
from __future__ import annotations

from ..selection.dar import keep_count
from ..selection.samplers import FixedSubsetSampler, SubsetSampler
from .base import Plan, SubsetMethod, register_method
from .dar import EqualBudgetConfig


@register_method("fixed_subset")
class FixedSubset(SubsetMethod):
    """One random subset as large as the budget (budget= or match=dict(<DaR>)), trained every epoch."""

    Params = EqualBudgetConfig

    def plan(self) -> Plan:
        size = keep_count(self.run.num_samples, self.params.relative_cost(self.run))
        return self.subset_plan([size] * self.run.epochs)

    def make_sampler(self) -> SubsetSampler:
        return FixedSubsetSampler(self.run.num_samples, self.params.relative_cost(self.run), **self.sampler_kwargs())
