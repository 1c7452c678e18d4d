"""Training cost accounting: relative costs of the methods and FLOP counts of a timm model.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .selection.dar import DaRParams, plan_subset_sizes, relative_cost
from .selection.online import OnlineParams, active_step_range

__all__ = [
    "TRAIN_FLOPS_PER_FORWARD",
    "dar_relative_cost",
    "forward_flops",
    "online_relative_cost",
    "online_relative_cost_analytic",
    "shortened_epochs",
    "train_flops_per_sample",
]

# A training step is one forward plus a backward that costs about two forwards: for every weight
# layer the backward computes the gradient w.r.t. its input and w.r.t. its weight, each a matmul/conv
# as large as the forward one (Kaplan et al. 2020; the thesis measures forward ~ 1/3 of a step).
TRAIN_FLOPS_PER_FORWARD = 3.0


def dar_relative_cost(num_samples: int, params: DaRParams) -> float:
    """Trained samples of a DaR schedule over those of uniform training for ``params.epochs`` epochs."""
    return relative_cost(plan_subset_sizes(num_samples, params), num_samples)


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
    """Whole-run cost of online selection relative to uniform training for ``baseline_steps`` steps.

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


def forward_flops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """FLOPs of one eval-mode forward of a batch of ``input_shape`` (e.g. ``(1, 3, 224, 224)``).

    Runs on a deep copy moved to the ``meta`` device (no memory, no compute, ``model`` untouched); a
    model with an op that has no meta kernel is counted on a CPU copy instead.
    """
    for device in ("meta", "cpu"):
        clone = copy.deepcopy(model).eval().to(device)
        counter = FlopCounterMode(display=False)
        try:
            with torch.no_grad(), counter:
                clone(torch.zeros(tuple(input_shape), device=device))
        except (NotImplementedError, RuntimeError):
            if device == "cpu":
                raise
            continue
        return float(counter.get_total_flops())
    raise AssertionError("unreachable")


def train_flops_per_sample(model: nn.Module, input_size: Sequence[int]) -> float:
    """Training FLOPs per sample of size ``input_size`` (C, H, W): 3 x one forward (see above)."""
    return TRAIN_FLOPS_PER_FORWARD * forward_flops(model, (1, *input_size))


def shortened_epochs(epochs: int, relative_cost: float) -> int:
    """Epochs of the equal-budget uniform control: ``round(epochs * relative_cost)``, at least 1."""
    if epochs < 1 or not 0 < relative_cost <= 1:
        raise ValueError(f"need epochs >= 1 and relative_cost in (0, 1], got {epochs}, {relative_cost}")
    return max(1, math.floor(epochs * relative_cost + 0.5))
