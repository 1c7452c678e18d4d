"""``online``: fast online minibatch selection (rule and scorer in ``pretrain/selection/online.py``).

Each step loads a uniform pool of b̄ (``pool_size``, default 2b), scores it at ``score_resolution`` with
no gradient and every model state restored, and trains on b drawn with probability ∝ rank^beta;
uniform for the first ``warmup_steps`` and the last ``cooldown_fraction`` of the steps. An epoch has as
many steps as a full-data epoch. Draws come from per-(seed, rank, step) generators.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..cost import TRAIN_FLOPS_PER_FORWARD
from ..selection.online import OnlineParams, OnlineSelector, active_step_range
from ..selection.samplers import UniformSampler
from .base import (
    Batch,
    EpochStats,
    EpochTotals,
    MethodParams,
    Plan,
    RunInfo,
    SelectionMethod,
    StepInfo,
    TrainerServices,
    register_method,
)


@dataclass(frozen=True)
class OnlineConfig(MethodParams):
    """``method=dict(type='online', pool_size=None, score_resolution=96, beta=1.0, warmup_steps=0, cooldown_fraction=0.1)``."""

    pool_size: int | None = None
    score_resolution: int = 96
    beta: float = 1.0
    warmup_steps: int = 0
    cooldown_fraction: float = 0.1

    def selector_params(self, run: RunInfo) -> OnlineParams:
        params = OnlineParams(batch_size=run.batch_size, pool_size=self.pool_size,
                              score_resolution=self.score_resolution, beta=self.beta,
                              warmup_steps=self.warmup_steps, cooldown_fraction=self.cooldown_fraction)
        params.validate_against(run.img_size)
        return params

    def validate(self, run: RunInfo | None) -> None:
        self.selector_params(run if run is not None else RunInfo(num_samples=1, epochs=1))


def steps_per_epoch(num_samples: int, batch_size: int, world_size: int = 1) -> int:
    """Steps of a full-data epoch (``DistributedSampler``-style padding, last batch kept)."""
    return math.ceil(math.ceil(num_samples / world_size) / batch_size)


def online_relative_cost_analytic(
    batch_size: int, pool_size: int, score_resolution: int, train_resolution: int, *, exponent: float = 2.0
) -> float:
    """Cost of one selecting step relative to a plain step: ``1 + (b̄/b) (1/3) (r̂/r)^k``.

    ``k = 2`` for CNNs (FLOPs scale with pixels), ``k = 3`` is the thesis's figure for transformers.
    """
    if min(batch_size, pool_size, score_resolution, train_resolution) < 1:
        raise ValueError("batch, pool and resolutions must be >= 1")
    ratio = (pool_size / batch_size) * (score_resolution / train_resolution) ** exponent
    return 1.0 + ratio / TRAIN_FLOPS_PER_FORWARD


def online_relative_cost(
    params: OnlineParams,
    total_steps: int,
    train_resolution: int,
    *,
    baseline_steps: int | None = None,
    exponent: float = 2.0,
) -> float:
    """Whole-run cost of online selection relative to full-data training for ``baseline_steps`` steps.

    Warm-up and cool-down steps are plain steps; the active ones cost ``online_relative_cost_analytic``.
    ``baseline_steps`` defaults to ``total_steps`` (same schedule length, so the result is >= 1; the
    method pays off by reaching the baseline accuracy in fewer steps).
    """
    first, stop = active_step_range(params, total_steps)
    step_cost = online_relative_cost_analytic(
        params.batch_size, params.pool_size, params.score_resolution, train_resolution, exponent=exponent
    )
    total = (total_steps - (stop - first)) + (stop - first) * step_cost
    return total / (baseline_steps or total_steps)


@register_method("online")
class OnlineSelection(SelectionMethod):
    """Per step, score a pool of b̄ at low resolution (state untouched) and train on b drawn ∝ rank^beta."""

    Params = OnlineConfig
    has_cross_rank_state = True  # per-rank pools and draws

    def __init__(self, params: OnlineConfig, run: RunInfo) -> None:
        super().__init__(params, run)
        self.selector_params = params.selector_params(run)
        self.pool = self.selector_params.pool_size
        self.steps = steps_per_epoch(run.num_samples, run.batch_size, run.world_size)
        self.selector: OnlineSelector | None = None

    def plan(self) -> Plan:
        run = self.run
        total = run.epochs * self.steps
        cost = online_relative_cost(self.selector_params, total, run.img_size)
        return Plan(self.name, run.epochs, run.epochs, (run.num_samples,) * run.epochs, run.num_samples, cost)

    def build_feed(self, dataset: Any, workers: int):
        from ..feed import PoolFeed

        sampler = UniformSampler(self.run.num_samples, seed=self.run.seed, num_replicas=self.run.world_size,
                                 rank=self.run.rank)
        return PoolFeed(dataset, sampler, self.pool, self.steps, workers, self.run.seed)

    def setup(self, services: TrainerServices) -> None:
        super().setup(services)
        self.selector = OnlineSelector(self.selector_params, self.run.epochs * self.steps, self.run.seed,
                                       rank=self.run.rank)

    def select(self, batch: Batch, step: StepInfo) -> Batch:
        active = self.selector.active(step.global_step)
        images, targets, picked = self.selector.select(self.services.model, batch.images, batch.targets,
                                                       step.global_step)
        if active:
            self.services.count_forwards(self.selector_params.score_resolution, self.pool)
        return Batch(images, targets, batch.indices[picked])

    def epoch_stats(self, epoch: int, totals: EpochTotals) -> EpochStats:
        trained = self.steps * self.run.batch_size * self.run.world_size
        # a warm-up / cool-down epoch scores nothing: every loaded batch is trained
        kept = self.run.batch_size / self.pool if sum(totals.forwards.values()) else 1.0
        return EpochStats(trained, kept)

    def rank_state_dict(self) -> dict[str, Any]:
        return {"selector": self.selector.state_dict()}

    def load_rank_state_dict(self, state) -> None:
        self.selector.load_state_dict(state["selector"])
