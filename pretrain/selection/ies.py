"""IES, instance-dependent early stopping (Yuan et al., ICLR 2025): a sample whose loss has stopped
changing leaves training, and comes back if it changes again.

Every sample gets one loss per epoch: its training loss when it trained, else the loss of a forward-only
pass after the epoch (the excluded samples are still forwarded, not trained). With ``d_t = l_t - 2 l_{t-1}
+ l_{t-2}`` the second-order difference of a sample's per-epoch losses, the official code keeps the last
``m + k`` differences (``m`` = ``moving_average``, ``k`` = ``window``), takes their moving averages of
``|d|`` over ``m`` consecutive values (``k + 1`` of them) and sums the last ``k``; a sample is *mastered*
when that sum is below ``threshold``. It needs ``m + k`` differences, i.e. ``m + k + 2`` losses, before it
can be judged; the oldest of those differences enters no average the sum reads (the official code's
arithmetic, kept).

Pure parts, no model and no global RNG:

* ``IESParams``: threshold (1e-3, the official CIFAR-10 value), moving_average m (3), window k (1);
* ``push_losses(history, losses)``: append one epoch's losses to the ``[N, m + k + 2]`` history;
* ``criterion(history, params)``: the sum above per sample (float64; NaN while a sample has fewer
  losses, or a NaN/inf among them: such a sample keeps training);
* ``excluded_set(history, params, min_train)``: the mastered samples, leaving at least ``min_train``
  samples in training;
* ``flops_lower_bound(N, E, params, min_train)``: the cheapest run the rule allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["IESParams", "criterion", "excluded_set", "flops_lower_bound", "push_losses"]


def _positive_int(x: object) -> bool:
    return not isinstance(x, bool) and isinstance(x, int) and x >= 1


@dataclass(frozen=True)
class IESParams:
    """threshold: a sample with a smaller averaged |second difference| of its loss leaves training (1e-3,
    the official CIFAR-10 default; CIFAR-100 doubles it; 0 never excludes); moving_average m: the
    averaging window over epochs (3); window k: how many of the latest averages are summed (1)."""

    threshold: float = 1e-3
    moving_average: int = 3
    window: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, run: object = None) -> None:
        """Raise ``ValueError`` with one line naming the first bad parameter."""
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ValueError(f"method.threshold (IES's mastery threshold) must be a number >= 0, got {t!r}")
        if not _positive_int(self.moving_average):
            raise ValueError(f"method.moving_average (IES's averaging window, in epochs) must be an integer >= 1, "
                             f"got {self.moving_average!r}")
        if not _positive_int(self.window):
            raise ValueError(f"method.window (IES's number of summed averages) must be an integer >= 1, "
                             f"got {self.window!r}")

    @property
    def history_length(self) -> int:
        """Losses a sample needs before it can be judged: ``m + k`` second differences need ``m + k + 2``."""
        return self.moving_average + self.window + 2


def push_losses(history: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """Shift every row of ``history`` (``[N, H]``, oldest first) left by one and append ``losses`` (in place)."""
    if history.dim() != 2 or losses.shape != (history.shape[0],):
        raise ValueError(f"history {tuple(history.shape)} and losses {tuple(losses.shape)} do not match")
    history[:, :-1] = history[:, 1:].clone()
    history[:, -1] = losses.to(history.dtype)
    return history


def criterion(history: torch.Tensor, params: IESParams) -> torch.Tensor:
    """Per sample: ``sum_{j=1..k} mean(|d_j|, ..., |d_{j+m-1}|)`` over the ``m + k`` second differences
    ``d_0 .. d_{m+k-1}`` of its last ``m + k + 2`` losses (float64); NaN unless all of them are finite."""
    m, h = params.moving_average, params.history_length
    if history.dim() != 2 or history.shape[1] < h:
        raise ValueError(f"history must be [N, >= {h}], got {tuple(history.shape)}")
    x = history[:, -h:].to(torch.float64)
    d = (x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]).abs()  # [N, m + k]
    averages = d.unfold(1, m, 1).mean(dim=2)  # [N, k + 1]: windows starting at 0 .. k
    total = averages[:, 1:].sum(dim=1)  # the last k
    return torch.where(torch.isfinite(x).all(dim=1), total, torch.full_like(total, math.nan))


def excluded_set(history: torch.Tensor, params: IESParams, min_train: int = 0) -> torch.Tensor:
    """Sorted int64 indices of the mastered samples (criterion < threshold), at most ``N - min_train``:
    when more are mastered, those with the largest criterion (ties: the higher index) train after all."""
    n = history.shape[0]
    c = criterion(history, params)
    mastered = torch.nonzero(c < params.threshold).flatten()  # NaN compares False: never mastered
    room = max(0, n - min_train)
    if mastered.numel() > room:
        order = torch.sort(c[mastered], stable=True).indices  # ascending criterion, ties by index
        mastered = torch.sort(mastered[order[:room]]).values
    return mastered


def flops_lower_bound(num_samples: int, epochs: int, params: IESParams, min_train: int) -> float:
    """The cheapest run the rule allows, relative to full-data training: every sample trains the first
    ``m + k + 2`` epochs; from then on all but ``min_train`` leave at once, each costing a forward (1/3 of a
    trained sample) after every epoch it sits out but the last."""
    if num_samples < 1 or epochs < 1:
        raise ValueError(f"need num_samples >= 1 and epochs >= 1, got {num_samples}, {epochs}")
    full = min(epochs, params.history_length)
    rest = epochs - full
    out = max(0, num_samples - min_train) if params.threshold > 0 else 0
    trained = full * num_samples + rest * (num_samples - out)
    forwards = max(0, rest - 1) * out  # no forward after the last epoch
    return (trained + forwards / 3) / (epochs * num_samples)
