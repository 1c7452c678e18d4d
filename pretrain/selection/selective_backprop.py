"""Selective Backprop (Jiang et al. 2019) in Composer's form: per loaded batch, train on a loss-biased share.

Pure parts, no model and no global RNG:

* ``selects(step, total_steps, batch_in_epoch, params)``: active when ``start <= t/T < end`` (t the
  0-based optimizer update, T the planned total), except every ``interrupt``-th batch of an epoch,
  which trains in full (Composer: batch ``b`` (0-based, within the epoch) trains in full when
  ``(b + 1) % interrupt == 0``; ``interrupt = 0`` never interrupts);
* ``selecting_batches(epoch, steps_per_epoch, total_steps, params)``: the same rule over a whole epoch in
  closed form (the plan's arithmetic: no loop over steps);
* ``rank_probabilities(n, keep)``: rank i (0-based, ascending loss) gets ``p_i ∝ ((i + 0.5)/n)^(1/keep - 1)``;
* ``select_by_loss(losses, keep, generator)``: ``int(keep * n)`` positions drawn without replacement
  from those probabilities (sequentially, ``torch.multinomial``) with an explicit generator.

Counts and sizes are Composer's, float arithmetic included: ``kept_count`` is ``int(keep * n)`` and
``score_resolution`` is ``F.interpolate(scale_factor=...)``'s ``floor(size * scale)`` in double precision
(keep = 0.29 of 100 keeps 28, scale 0.29 of 100 px gives 28, where exact arithmetic gives 29): a run
must train the batches Composer trains. Scoring itself (a no-grad forward at ``scale_factor``
resolution that leaves the model untouched) is ``pretrain.selection.scoring.score_losses``; the
adapter owns the per-rank generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

__all__ = [
    "SelectiveBackpropParams",
    "kept_count",
    "rank_probabilities",
    "score_resolution",
    "select_by_loss",
    "selecting_batches",
    "selecting_steps",
    "selects",
    "uninterrupted",
    "window_steps",
]


def _exact(x: float) -> Fraction:
    return Fraction(repr(float(x)))


def _number(x: object) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


@dataclass(frozen=True)
class SelectiveBackpropParams:
    """start / end: the active window as fractions of training (Composer: 0.5 / 0.9); keep: share of
    each batch trained (0.5); scale_factor: scoring resolution relative to training (1.0; 0.5 suggested
    for images); interrupt: every interrupt-th batch of an epoch trains in full (2; 0 = never)."""

    start: float = 0.5
    end: float = 0.9
    keep: float = 0.5
    scale_factor: float = 1.0
    interrupt: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, run: object = None) -> None:
        """Raise ``ValueError`` with one line naming the first bad parameter."""
        if not _number(self.start) or not 0 <= self.start <= 1:
            raise ValueError(f"method.start (Selective Backprop) must be a fraction of training in [0, 1], got {self.start!r}")
        if not _number(self.end) or not 0 <= self.end <= 1:
            raise ValueError(f"method.end (Selective Backprop) must be a fraction of training in [0, 1], got {self.end!r}")
        if self.start >= self.end:
            raise ValueError(f"method.start={self.start} must be < method.end={self.end} (Selective Backprop's active window)")
        if not _number(self.keep) or not 0 < self.keep <= 1:
            raise ValueError(f"method.keep (Selective Backprop's kept share of a batch) must be in (0, 1], got {self.keep!r}")
        if not _number(self.scale_factor) or not 0 < self.scale_factor <= 1:
            raise ValueError(f"method.scale_factor (Selective Backprop's scoring resolution) must be in (0, 1], got {self.scale_factor!r}")
        if isinstance(self.interrupt, bool) or not isinstance(self.interrupt, int) or self.interrupt < 0:
            raise ValueError(f"method.interrupt (Selective Backprop) must be an integer >= 0, got {self.interrupt!r}")


def selects(step: int, total_steps: int, batch_in_epoch: int, params: SelectiveBackpropParams) -> bool:
    """Whether optimizer update ``step`` (0-based) of ``total_steps`` selects, for 0-based batch
    ``batch_in_epoch`` of its epoch. ``start <= step/total < end`` is compared exactly (as fractions).

    ``keep = 1`` never selects: every sample would be kept, so the scoring pass would be wasted
    (Composer skips it too).
    """
    if total_steps < 1 or not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    if batch_in_epoch < 0:
        raise ValueError(f"batch_in_epoch must be >= 0, got {batch_in_epoch}")
    if params.keep == 1:
        return False
    progress = Fraction(step, total_steps)
    in_window = _exact(params.start) <= progress < _exact(params.end)
    interrupted = params.interrupt > 0 and (batch_in_epoch + 1) % params.interrupt == 0
    return in_window and not interrupted


def window_steps(total_steps: int, params: SelectiveBackpropParams) -> tuple[int, int]:
    """``[t0, t1)``: the updates t of ``total_steps`` with ``start <= t/T < end`` (``t0 = ceil(start T)``,
    ``t1 = ceil(end T)``, exact), the window ``selects`` tests step by step."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    return math.ceil(_exact(params.start) * total_steps), math.ceil(_exact(params.end) * total_steps)


def uninterrupted(lo: int, hi: int, interrupt: int) -> int:
    """How many batches b in ``[lo, hi)`` of an epoch are not interrupted (``(b + 1) % interrupt != 0``).

    The interrupted ones are the multiples of ``interrupt`` among ``b + 1`` in ``(lo, hi]``.
    """
    if hi <= lo:
        return 0
    if interrupt == 0:
        return hi - lo
    return (hi - lo) - (hi // interrupt - lo // interrupt)


def selecting_batches(epoch: int, steps_per_epoch: int, total_steps: int,
                      params: SelectiveBackpropParams) -> tuple[int, bool]:
    """Of 0-based ``epoch``'s batches ``0 .. S-1``: how many of ``0 .. S-2`` select, and whether the last
    one (``S-1``, the only one of another size) selects -- ``selects`` over the epoch in O(1)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    if params.keep == 1:
        return 0, False
    t0, t1 = window_steps(total_steps, params)
    first = epoch * steps_per_epoch
    lo = min(max(t0 - first, 0), steps_per_epoch)
    hi = min(max(t1 - first, 0), steps_per_epoch)
    last = steps_per_epoch - 1
    body = uninterrupted(lo, min(hi, last), params.interrupt)
    return body, lo <= last < hi and uninterrupted(last, last + 1, params.interrupt) == 1


def selecting_steps(total_steps: int, steps_per_epoch: int, params: SelectiveBackpropParams) -> int:
    """How many of ``total_steps`` select when every epoch has ``steps_per_epoch`` batches (the plan);
    a loop over epochs, not steps."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    epochs = math.ceil(total_steps / steps_per_epoch)
    count = 0
    for e in range(epochs):
        body, last = selecting_batches(e, steps_per_epoch, total_steps, params)
        count += body + last  # the window ends by T (end <= 1): a partial last epoch needs no care
    return count


def kept_count(n: int, keep: float) -> int:
    """``int(keep * n)`` in floating point, exactly Composer's ``n_select`` (0.29 of 100 -> 28)."""
    if n < 0:
        raise ValueError(f"batch size must be >= 0, got {n}")
    return int(float(keep) * n)


def score_resolution(img_size: int, scale_factor: float) -> int:
    """Scoring resolution: ``floor(img_size * scale_factor)`` in double precision, the size
    ``F.interpolate(scale_factor=..., recompute_scale_factor=False)`` gives in Composer (0.29 of 100 -> 28)."""
    return max(1, math.floor(float(img_size) * float(scale_factor)))


def rank_probabilities(n: int, keep: float) -> torch.Tensor:
    """``p_i ∝ ((i + 0.5) / n) ** (1/keep - 1)`` for ranks i = 0 (lowest loss) .. n-1 (float64, sums to 1).

    The half-rank offset gives the easiest sample a non-zero chance; ``keep = 1`` is uniform.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    quantiles = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    weights = quantiles ** (1.0 / keep - 1.0)
    return weights / weights.sum()


def select_by_loss(losses: torch.Tensor, keep: float, generator: torch.Generator) -> torch.Tensor:
    """Draw ``int(keep * n)`` batch positions without replacement, rank i with probability ∝ ``p_i``.

    Losses are ranked ascending with a stable sort: equal losses give the earlier position the lower rank
    (Composer's ``argsort`` leaves their order unspecified), NaN ranks above every number, +inf included,
    as in Composer's ``torch.argsort``, and several NaNs keep their batch order. Returns CPU int64
    positions, sorted ascending (the batch keeps its order). Composer draws with
    ``np.random.choice(replace=False, p=...)`` from the global NumPy RNG; its law is the same sequential
    draw, here from an explicit generator.
    """
    if losses.dim() != 1 or losses.numel() == 0:
        raise ValueError(f"losses must be a non-empty 1-D tensor, got shape {tuple(losses.shape)}")
    n = losses.numel()
    k = kept_count(n, keep)
    if k < 1:
        raise ValueError(f"keep={keep} of a batch of {n} keeps no sample")
    loss = losses.detach().to("cpu", torch.float64)
    ascending = torch.sort(loss, stable=True).indices  # torch's sort puts NaN after +inf
    ranks = torch.multinomial(rank_probabilities(n, keep), k, replacement=False, generator=generator)
    return torch.sort(ascending[ranks]).values
