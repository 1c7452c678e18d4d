"""``dar``: Drop-and-Refresh over recorded training losses (rule in ``pretrain/selection/dar.py``).

Config keys (Algorithm 1's names): ``warmup`` W, ``interval`` I, ``keep`` p, ``refresh`` R (list of
epochs), ``active`` alpha (None = unlimited). After each drop, ``selection/epoch_XXX.npz`` holds the
epoch's loss table (float32, NaN = not trained) and the kept mask of the next subset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..selection.dar import DaRParams, plan_subset_sizes, relative_cost
from ..selection.samplers import DaRSampler, SubsetSampler
from .base import EpochResult, MethodParams, Plan, RunInfo, SubsetMethod, register_method


@dataclass(frozen=True)
class DaRConfig(MethodParams):
    """``method=dict(type='dar', warmup=W, interval=I, keep=p, refresh=[...], active=alpha)``."""

    warmup: int = 0
    interval: int = 1
    keep: float = 1.0
    refresh: tuple[int, ...] = ()
    active: int | None = None

    def schedule(self, epochs: int) -> DaRParams:
        """The pure rule's parameters for a run of ``epochs`` (validates; one-line ``ValueError``)."""
        return DaRParams(warmup=self.warmup, interval=self.interval, keep=self.keep, epochs=epochs,
                         refresh=tuple(self.refresh), active=self.active)

    def validate(self, run: RunInfo | None) -> None:
        self.schedule(run.epochs if run is not None else max((1, *self.refresh)))


def dar_relative_cost(num_samples: int, params: DaRParams) -> float:
    """Trained samples of a DaR schedule over those of full-data training for ``params.epochs`` epochs."""
    return relative_cost(plan_subset_sizes(num_samples, params), num_samples)


@dataclass(frozen=True)
class EqualBudgetConfig(MethodParams):
    """The budget of an equal-budget control: ``budget=<relative cost>`` or ``match=dict(<DaR params>)``."""

    budget: float | None = None
    match: dict[str, Any] | None = None

    def validate(self, run: RunInfo | None) -> None:
        if (self.budget is None) == (self.match is None):
            raise ConfigError("an equal-budget control needs exactly one of method.budget=<fraction> or "
                              "method.match=dict(<DaR params>)")
        if self.match is not None:
            DaRConfig.from_config(self.match, "method.match", run)
        else:
            value = self.budget
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ConfigError(f"method.budget must be a relative cost in (0, 1], got {value!r}")

    def relative_cost(self, run: RunInfo) -> float:
        """The relative cost to match: ``budget``, or the cost of the ``match`` DaR schedule on this run."""
        if self.match is not None:
            dar = DaRConfig.from_config(self.match, "method.match", run)
            return dar_relative_cost(run.num_samples, dar.schedule(run.epochs))
        return float(self.budget)


@register_method("dar")
class DropAndRefresh(SubsetMethod):
    """Drop-and-Refresh: every I epochs keep the hardest p of the subset (by training loss); refresh at R."""

    Params = DaRConfig
    has_cross_rank_state = True  # the loss table gathered from every rank
    mode = "loss"

    def plan(self) -> Plan:
        return self.subset_plan(plan_subset_sizes(self.run.num_samples, self.params.schedule(self.run.epochs)))

    def make_sampler(self) -> SubsetSampler:
        return DaRSampler(self.run.num_samples, self.params.schedule(self.run.epochs), mode=self.mode,
                          **self.sampler_kwargs())

    def epoch_result(self, sampler_result: dict[str, Any]) -> EpochResult:
        if not sampler_result["drop"]:
            return EpochResult()
        return EpochResult(dump={"losses": sampler_result["losses"].astype("float32"), "kept": sampler_result["kept"]})
