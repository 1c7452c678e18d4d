"""``shortened``: full-data training for fewer epochs, the LR milestones scaled alike (a control)."""
from __future__ import annotations

import math

from .base import Plan, SubsetMethod, register_method
from .dar import EqualBudgetConfig


def shortened_epochs(epochs: int, relative_cost: float) -> int:
    """Epochs of the equal-budget control: ``round(epochs * relative_cost)``, at least 1."""
    if epochs < 1 or not 0 < relative_cost <= 1:
        raise ValueError(f"need epochs >= 1 and relative_cost in (0, 1], got {epochs}, {relative_cost}")
    return max(1, math.floor(epochs * relative_cost + 0.5))


@register_method("shortened")
class Shortened(SubsetMethod):
    """All data every epoch, for round(E x budget) epochs; the schedule's milestones scale with the length."""

    Params = EqualBudgetConfig

    def plan(self) -> Plan:
        epochs = shortened_epochs(self.run.epochs, self.params.relative_cost(self.run))
        return self.subset_plan([self.run.num_samples] * epochs)
