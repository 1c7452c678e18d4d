"""Fast online minibatch selection (thesis ch. 4, Algorithms 2-3): score a pool at low resolution, keep b.

Pure parts: ``rank_probabilities`` and ``select_by_rank`` (Eq. 4.4 and the multinomial draw) and
``score_losses`` (a side-effect-free scoring forward, in ``scoring.py``: other methods score with it too). ``OnlineSelector`` decides per step whether to
select and owns the randomness.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from .distributed import world_info
from .samplers import derive_seed
from .scoring import LossFn, score_losses
from .scoring import downsample as _downsample  # noqa: F401  (bench/overhead.py times it alone)

__all__ = [
    "OnlineParams",
    "OnlineSelector",
    "active_step_range",
    "rank_probabilities",
    "score_losses",
    "select_by_rank",
]


def rank_probabilities(losses: torch.Tensor, beta: float) -> torch.Tensor:
    """Selection probabilities ``p_i ∝ (rank_i / n) ** beta`` over a pool (float64, sums to 1).

    ``rank_i / n`` is Eq. 4.4's empirical CDF ``P(l_j <= l_i)``: ranks run 1..n with n the hardest, so
    even the easiest sample keeps a non-zero probability. Equal losses share the same (highest) rank,
    which makes ties deterministic and independent of the pool order. NaN counts as the largest loss
    (unknown = hard, as in DaR). ``beta = 0`` is uniform.
    """
    if losses.dim() != 1 or losses.numel() == 0:
        raise ValueError(f"losses must be a non-empty 1-D tensor, got shape {tuple(losses.shape)}")
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    loss = losses.detach().to("cpu", torch.float64)
    loss = torch.where(torch.isnan(loss), torch.full_like(loss, math.inf), loss)
    ranks = torch.searchsorted(torch.sort(loss).values, loss, right=True).to(torch.float64)
    weights = (ranks / loss.numel()) ** beta  # float64: (1/n)**beta stays > 0 for any sane beta
    return weights / weights.sum()


def select_by_rank(
    losses: torch.Tensor, num_select: int, beta: float, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``num_select`` pool positions without replacement, sequentially ∝ ``rank_probabilities``.

    Returns CPU int64 positions sorted ascending (the pool keeps its order). Sequential drawing
    without replacement is ``torch.multinomial``'s (and Algorithm 3's) semantics.
    """
    if not 0 < num_select <= losses.numel():
        raise ValueError(f"cannot select {num_select} of a pool of {losses.numel()}")
    probs = rank_probabilities(losses, beta)
    picked = torch.multinomial(probs, num_select, replacement=False, generator=generator)
    return torch.sort(picked).values


@dataclass
class OnlineParams:
    """batch_size b (trained), pool_size b̄ (scored, default 2b), score_resolution r̂, hardness beta,
    uniform warm-up steps and the uniform cool-down as a fraction of all steps (thesis defaults)."""

    batch_size: int
    pool_size: int | None = None
    score_resolution: int = 96
    beta: float = 1.0
    warmup_steps: int = 0
    cooldown_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.pool_size is None:
            self.pool_size = 2 * self.batch_size
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` with one line naming the first bad parameter."""
        if self.batch_size < 1:
            raise ValueError(f"online batch_size must be >= 1, got {self.batch_size}")
        if self.pool_size < self.batch_size:
            raise ValueError(f"online pool_size b̄={self.pool_size} must be >= batch_size b={self.batch_size}")
        if self.score_resolution < 1:
            raise ValueError(f"online score_resolution must be >= 1, got {self.score_resolution}")
        if not math.isfinite(self.beta) or self.beta < 0:
            raise ValueError(f"online beta must be a finite number >= 0, got {self.beta}")
        if self.warmup_steps < 0:
            raise ValueError(f"online warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.cooldown_fraction <= 1:
            raise ValueError(f"online cooldown_fraction must be in [0, 1], got {self.cooldown_fraction}")

    def validate_against(self, train_resolution: int) -> None:
        """Scoring must not be more expensive than training: r̂ <= r."""
        if self.score_resolution > train_resolution:
            raise ValueError(
                f"online score_resolution {self.score_resolution} is larger than the training resolution {train_resolution}"
            )


def active_step_range(params: OnlineParams, total_steps: int) -> tuple[int, int]:
    """Steps ``[first, stop)`` (0-based optimizer updates) that select; the rest are uniform.

    The cool-down is the last ``ceil(cooldown_fraction * total_steps)`` steps (exact arithmetic).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    cooldown = math.ceil(Fraction(repr(float(params.cooldown_fraction))) * total_steps)
    stop = total_steps - cooldown
    return min(params.warmup_steps, stop), stop


class OnlineSelector:
    """Per-step selection of b samples out of a loaded pool of b̄ (thin adapter, see module docstring).

    Randomness: each step draws from a fresh ``torch.Generator`` seeded by ``(seed, rank, step)``, so a
    resumed run makes the same draws without storing generator state, ranks draw independently, and
    no global RNG is touched. ``state_dict`` keeps the settings (checked on load) and the counters.
    """

    def __init__(
        self, params: OnlineParams, total_steps: int, seed: int = 0, *, rank: int | None = None,
        loss_fn: LossFn | None = None,
    ) -> None:
        self.params = params
        self.total_steps = int(total_steps)
        self.seed = int(seed)
        self.rank = world_info(None, rank)[1] if rank is None else int(rank)
        self.loss_fn = loss_fn
        self.first_active, self.stop_active = active_step_range(params, self.total_steps)
        self.scored_samples = 0  # samples scored so far on this rank (selection cost)
        self.active_steps = 0

    def active(self, step: int) -> bool:
        """Whether step ``step`` (0-based optimizer update) selects; warm-up and cool-down are uniform."""
        return self.first_active <= step < self.stop_active

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.seed, f"online/{self.rank}", step))

    def select(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(images_b, targets_b, positions)``: b samples of the pool, scored or uniform.

        ``positions`` are CPU int64 indices into the pool, sorted. The pool must hold at least b samples
        (use ``drop_last=True`` on the pool loader); a smaller-than-b̄ pool is used as it is.
        """
        b, pool = self.params.batch_size, images.shape[0]
        if pool < b or targets.shape[0] != pool:
            raise ValueError(f"online selection needs a pool of >= {b} images and as many targets, got {pool}")
        gen = self.generator(step)
        if self.active(step):
            losses = score_losses(model, images, targets, self.params.score_resolution, self.loss_fn)
            positions = select_by_rank(losses, b, self.params.beta, gen)
            self.scored_samples += pool
            self.active_steps += 1
        else:
            positions = torch.sort(torch.randperm(pool, generator=gen)[:b]).values
        on_device = positions.to(images.device)
        return images[on_device], targets[on_device.to(targets.device)], positions

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": asdict(self.params),
            "total_steps": self.total_steps,
            "seed": self.seed,
            "scored_samples": self.scored_samples,
            "active_steps": self.active_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = {"params": asdict(self.params), "total_steps": self.total_steps, "seed": self.seed}
        diff = [f"{k}: {state.get(k)!r} vs {v!r}" for k, v in mine.items() if state.get(k) != v]
        if diff:
            raise ValueError(f"online selector state is from other settings ({'; '.join(diff)}; checkpoint vs now)")
        self.scored_samples = int(state["scored_samples"])
        self.active_steps = int(state["active_steps"])
