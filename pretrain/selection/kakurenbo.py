"""KAKURENBO (Nguyen et al., NeurIPS 2023): hide confidently-learned easy samples for an epoch.

Pure parts, no model and no global RNG:

* ``hidden_fraction(epoch, E, params)``: the maximum hidden fraction ``F_e`` of an epoch: 0 during the
  warm-up epochs, then ``F`` times a step factor (1, 0.8, 0.6, 0.4 by default) that drops at the
  milestones, given as fractions of training (default 1/3, 2/3, 8/9: epochs 30/60/80 of the official
  90-epoch ImageNet ResNet-50 script, its LR milestones);
* ``lr_factor(epoch, E, params)``: ``1 / (1 - F_e)``, the official code's learning-rate compensation
  for the updates an epoch loses (1 during warm-up);
* ``hide_set(losses, correct, confidence, fraction, tau)``: among the ``floor(F_e * N)`` lowest-loss
  samples, those predicted correctly with confidence (max softmax probability) >= tau at their last
  forward; everything else (including never-scored samples) trains;
* ``prediction_stats(logits, targets)``: correctness and confidence of one forward;
* ``cost_bound(N, E, params)``: the fewest samples each epoch can train (the real figure depends on
  the losses and is known only after training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

__all__ = [
    "KakurenboParams",
    "cost_bound",
    "hidden_fraction",
    "hide_set",
    "lr_factor",
    "milestone_epochs",
    "prediction_stats",
]


def _exact(x: float) -> Fraction:
    return Fraction(repr(float(x)))


def _fraction_in(x: object, low: float, high: float, closed_low: bool) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return False
    return (low <= x if closed_low else low < x) and x < high


@dataclass(frozen=True)
class KakurenboParams:
    """max_fraction F in [0, 1) (paper's ImageNet ResNet-50: 0.3); tau: confidence threshold in (0, 1)
    (0.7); warmup_epochs: leading epochs that hide nothing and keep the LR (5, the recipe's LR warm-up);
    milestones: fractions of training where F's factor steps to the next of ``factors``."""

    max_fraction: float = 0.3
    tau: float = 0.7
    warmup_epochs: int = 5
    milestones: tuple[float, ...] = (1 / 3, 2 / 3, 8 / 9)
    factors: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4)

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))
        object.__setattr__(self, "factors", tuple(self.factors))
        self.validate()

    def validate(self, run: object = None) -> None:
        """Raise ``ValueError`` with one line naming the first bad parameter."""
        if not _fraction_in(self.max_fraction, 0, 1, closed_low=True):
            raise ValueError(f"method.max_fraction (KAKURENBO's F) must be in [0, 1), got {self.max_fraction!r}")
        if not _fraction_in(self.tau, 0, 1, closed_low=False):
            raise ValueError(f"method.tau (KAKURENBO's confidence threshold) must be in (0, 1), got {self.tau!r}")
        w = self.warmup_epochs
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ValueError(f"method.warmup_epochs (KAKURENBO) must be an integer >= 0, got {w!r}")
        ms = self.milestones
        if not all(_fraction_in(m, 0, 1, closed_low=False) for m in ms) or any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            raise ValueError(f"method.milestones (KAKURENBO) must be increasing fractions of training in (0, 1), got {list(ms)}")
        good = [not isinstance(f, bool) and isinstance(f, (int, float)) and 0 <= f <= 1 for f in self.factors]
        if len(self.factors) != len(ms) + 1 or not all(good):
            raise ValueError(f"method.factors (KAKURENBO) must be {len(ms) + 1} numbers in [0, 1] (one per stage), "
                             f"got {list(self.factors)}")


def milestone_epochs(epochs: int, params: KakurenboParams) -> list[int]:
    """0-based epoch indices where each later stage starts: ``round(m * E)`` (half up).

    Rounding makes decimals written in a config land on the intended epoch (0.3333 * 90 -> 30).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return [math.floor(_exact(m) * epochs + Fraction(1, 2)) for m in params.milestones]


def hidden_fraction(epoch: int, epochs: int, params: KakurenboParams) -> float:
    """``F_e`` of 1-based ``epoch``: 0 for ``epoch <= warmup_epochs``, else ``F * factors[stage]``
    where stage counts the milestones with ``epoch - 1 >= round(m * E)`` (the official code's
    ``epoch < 30`` tests on its 0-based epoch)."""
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must be in [1, {epochs}], got {epoch}")
    if epoch <= params.warmup_epochs:
        return 0.0
    stage = sum(epoch - 1 >= m for m in milestone_epochs(epochs, params))
    return float(_exact(params.max_fraction) * _exact(params.factors[stage]))


def lr_factor(epoch: int, epochs: int, params: KakurenboParams) -> float:
    """``1 / (1 - F_e)``: the official code scales the scheduled LR by this on every step of an epoch
    after warm-up, with F_e the epoch's *maximum* hidden fraction (known before the epoch, whatever
    the losses), compensating the updates hidden samples no longer contribute."""
    f = _exact(hidden_fraction(epoch, epochs, params))
    return float(1 / (1 - f))


def prediction_stats(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct, confidence)`` per sample: argmax == target, and the max softmax probability over
    classes (float32). The official code takes the softmax over the batch axis (``dim=0``), which makes
    a sample's confidence depend on its batch-mates; the paper's prediction confidence is per sample.
    Soft targets (mixup/cutmix) count as their argmax class."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, classes), got shape {tuple(logits.shape)}")
    labels = targets.argmax(dim=1) if targets.dim() == 2 else targets
    probs = torch.softmax(logits.detach().float(), dim=1)
    confidence, predicted = probs.max(dim=1)
    return (predicted == labels).cpu(), confidence.cpu()


def hide_set(
    losses: torch.Tensor, correct: torch.Tensor, confidence: torch.Tensor, fraction: float, tau: float
) -> torch.Tensor:
    """Sorted int64 indices hidden this epoch (index i = dataset sample i; NaN loss = never scored).

    Candidates are the ``floor(fraction * N)`` lowest losses among the scored samples (N the whole
    table; equal losses: the lower index first, so exactly that many candidates, never more); a
    candidate is hidden when it was predicted correctly with confidence >= tau at its last forward,
    and "moved back" to training otherwise. The official training scripts also walk exactly
    ``int(F * N)`` samples of ``torch.sort``'s ascending order (an unstable sort: equal losses in any
    order); only their timing harness (``*.per.py``, which returns before training) takes every loss
    ``<=`` the k-th smallest, which can exceed F on ties.
    """
    n = losses.numel()
    if losses.dim() != 1 or correct.shape != losses.shape or confidence.shape != losses.shape:
        raise ValueError("losses, correct and confidence must be 1-D tensors of one length")
    k = math.floor(_exact(fraction) * n)
    loss = losses.detach().to("cpu", torch.float64)
    scored = torch.nonzero(~torch.isnan(loss)).flatten()
    if k == 0 or scored.numel() == 0:
        return scored[:0]
    order = torch.sort(loss[scored], stable=True).indices  # ascending loss, ties by index (scored is sorted)
    candidates = scored[order[:k]]
    ok = correct.to("cpu", torch.bool)[candidates] & (confidence.to("cpu", torch.float64)[candidates] >= tau)
    return torch.sort(candidates[ok]).values


def cost_bound(num_samples: int, epochs: int, params: KakurenboParams) -> tuple[list[int], list[int]]:
    """``(trained, refreshed)``: per epoch the fewest samples trained, ``N - floor(F_e N)``, and the
    most refreshed by the forward-only pass after it, ``floor(F_e N)`` (none after the last epoch:
    nothing is selected any more). Nothing is hidden in epoch 1 (nothing is scored yet) or during
    warm-up."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    hidden = [0 if e == 1 else math.floor(_exact(hidden_fraction(e, epochs, params)) * num_samples)
              for e in range(1, epochs + 1)]
    return [num_samples - h for h in hidden], hidden[:-1] + [0]
