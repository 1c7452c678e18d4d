"""Drop-and-Refresh (DaR): the schedule and the selection as pure functions.

The schedule follows Algorithm 1 of the DaR / DaP papers with one correction: ``T_prev`` is reset at a
refresh. The printed algorithm leaves ``T_prev`` at the last drop, so with an active window
(``tau - T_start < alpha``) the condition ``tau - T_prev == I`` can never hold again after the first
refresh and all dropping stops; resetting it is what reproduces the "computation" figures of the DaP
paper's Tables 2, 3 and 7 (see ``tests/test_pretrain/test_dar.py``).

Everything here is deterministic and free of global state; ``samplers.DaRSampler`` is the thin stateful
adapter that feeds it recorded losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

__all__ = [
    "DaRParams",
    "DaRState",
    "dar_transition",
    "initial_state",
    "keep_count",
    "plan_subset_sizes",
    "relative_cost",
    "select_hardest",
    "select_random",
]


def _exact(x: float) -> Fraction:
    """The decimal the user wrote: ``Fraction(0.9)`` is 0.9000000000000000222..., ``Fraction('0.9')`` is 9/10."""
    return Fraction(repr(float(x)))


def keep_count(n: int, keep: float) -> int:
    """``ceil(keep * n)`` in exact arithmetic (``math.ceil(0.9 * 10)`` is 10 only by luck; 0.7*10 is 7.000...01)."""
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    return math.ceil(_exact(keep) * n)


@dataclass(frozen=True)
class DaRParams:
    """DaR hyper-parameters (names as in Algorithm 1).

    warmup (W): epochs trained on the full set before the first drop can happen.
    interval (I): a drop happens every ``interval`` epochs.
    keep (p): fraction of the *current* subset kept at a drop, in (0, 1].
    epochs (E): total training epochs.
    refresh (R): epochs after which the full set comes back (strictly increasing, each in [1, E]).
    active (alpha): drops only while ``tau - T_start < alpha``; ``None`` means unlimited.
    """

    warmup: int
    interval: int
    keep: float
    epochs: int
    refresh: tuple[int, ...] = ()
    active: int | None = None

    def __post_init__(self) -> None:
        # configs give lists; a frozen dataclass needs a hashable tuple
        object.__setattr__(self, "refresh", tuple(self.refresh))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` with one line naming the first bad parameter."""
        for name in ("warmup", "interval", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"DaR {name} must be an integer, got {value!r}")
        if self.epochs < 1:
            raise ValueError(f"DaR epochs must be >= 1, got {self.epochs}")
        if self.warmup < 0:
            raise ValueError(f"DaR warmup must be >= 0, got {self.warmup}")
        if self.interval < 1:
            raise ValueError(f"DaR interval must be >= 1, got {self.interval}")
        if isinstance(self.keep, bool) or not isinstance(self.keep, (int, float)) or not (0 < self.keep <= 1):
            raise ValueError(f"DaR keep fraction p must be in (0, 1], got {self.keep!r}")
        if self.active is not None and (
            isinstance(self.active, bool) or not isinstance(self.active, int) or self.active < 1
        ):
            raise ValueError(f"DaR active epochs must be a positive integer or None, got {self.active!r}")
        for r in self.refresh:
            if isinstance(r, bool) or not isinstance(r, int):
                raise ValueError(f"DaR refresh epochs must be integers, got {list(self.refresh)}")
        if any(b <= a for a, b in zip(self.refresh, self.refresh[1:], strict=False)):
            raise ValueError(f"DaR refresh epochs must be strictly increasing, got {list(self.refresh)}")
        if self.refresh and (self.refresh[0] < 1 or self.refresh[-1] > self.epochs):
            raise ValueError(
                f"DaR refresh epochs must lie in [1, epochs={self.epochs}], got {list(self.refresh)}"
            )


@dataclass(frozen=True)
class DaRState:
    """Epoch of the last refresh (``T_start``) and of the last drop (``T_prev``)."""

    t_start: int
    t_prev: int


def initial_state(params: DaRParams) -> DaRState:
    """``T_start = T_prev = W`` (Algorithm 1, line 3)."""
    return DaRState(t_start=params.warmup, t_prev=params.warmup)


def dar_transition(state: DaRState, epoch: int, params: DaRParams) -> tuple[DaRState, bool, bool]:
    """Apply the rule after training epoch ``tau = epoch`` (1-based); return ``(state, drop, refresh)``.

    drop: ``tau > W and tau - T_prev == I and tau - T_start < alpha`` -> ``T_prev = tau``.
    refresh: ``tau in R`` -> ``T_start = T_prev = tau``; the full set comes back. When both happen at the
    same epoch the refresh wins for the subset (the drop only moves ``T_prev``, which the refresh resets).
    """
    if epoch < 1 or epoch > params.epochs:
        raise ValueError(f"epoch must be in [1, {params.epochs}], got {epoch}")
    t_start, t_prev = state.t_start, state.t_prev
    in_window = params.active is None or epoch - t_start < params.active
    drop = epoch > params.warmup and epoch - t_prev == params.interval and in_window
    if drop:
        t_prev = epoch
    refresh = epoch in params.refresh
    if refresh:
        t_start = t_prev = epoch
    return DaRState(t_start=t_start, t_prev=t_prev), drop, refresh


def plan_subset_sizes(num_samples: int, params: DaRParams) -> list[int]:
    """Size of the subset trained in each epoch ``1..E`` (index 0 is epoch 1), without any data."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    state, n, sizes = initial_state(params), num_samples, []
    for epoch in range(1, params.epochs + 1):
        sizes.append(n)
        state, drop, refresh = dar_transition(state, epoch, params)
        if drop:
            n = keep_count(n, params.keep)
        if refresh:
            n = num_samples
    return sizes


def relative_cost(sizes: list[int], num_samples: int) -> float:
    """Trained samples over those of uniform training for as many epochs: ``sum(sizes) / (E * N)``."""
    if not sizes or num_samples < 1:
        raise ValueError("relative_cost needs at least one epoch and num_samples >= 1")
    return sum(sizes) / (len(sizes) * num_samples)


def _check_pair(indices: torch.Tensor, losses: torch.Tensor | None = None, unique: bool = True) -> None:
    if indices.dim() != 1:
        raise ValueError(f"indices must be 1-D, got shape {tuple(indices.shape)}")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
    if losses is not None and losses.shape != indices.shape:
        raise ValueError(f"losses shape {tuple(losses.shape)} != indices shape {tuple(indices.shape)}")
    if unique and indices.numel() != torch.unique(indices).numel():
        raise ValueError("indices must be unique (one recorded loss per sample)")


def _nan_as_inf(losses: torch.Tensor) -> torch.Tensor:
    loss = losses.detach().to("cpu", torch.float64)
    return torch.where(torch.isnan(loss), torch.full_like(loss, math.inf), loss)


def _hardest_of_sorted(idx: torch.Tensor, losses: torch.Tensor, k: int) -> torch.Tensor:
    """``select_hardest`` for strictly increasing ``idx``: a k-th value threshold instead of a full sort."""
    n = idx.numel()
    if k >= n:
        return idx.clone()
    if k <= 0:
        return idx[:0].clone()
    loss = _nan_as_inf(losses)
    # the k-th largest is the (n-k+1)-th smallest; everything above it is kept
    t = torch.kthvalue(loss, n - k + 1).values
    mask = loss > t
    # ties at the threshold: the lowest dataset indices (= earliest positions, idx is increasing) win
    ties = torch.nonzero(loss == t).flatten()
    mask[ties[: k - int(mask.sum())]] = True
    return idx[mask]


def select_hardest(indices: torch.Tensor, losses: torch.Tensor, keep: float) -> torch.Tensor:
    """Keep the ``ceil(keep * n)`` samples with the largest loss; return their indices sorted ascending.

    Order: larger loss first; NaN counts as the largest (a NaN means "loss unknown", e.g. a sample that
    fell into a dropped last batch, and a sample is never dropped on missing information); equal losses
    (and several NaNs) are broken by the lower dataset index. The result does not depend on the order of
    the input pairs.
    """
    _check_pair(indices, losses, unique=False)
    k = keep_count(indices.numel(), keep)
    idx = indices.detach().to("cpu", torch.int64)
    if bool((idx[1:] > idx[:-1]).all()):
        # the sampler's subset is always strictly increasing: unique and already in index order (O(n) check)
        return _hardest_of_sorted(idx, losses, k)
    _check_pair(idx)
    loss = _nan_as_inf(losses)
    by_index = torch.argsort(idx, stable=True)
    idx, loss = idx[by_index], loss[by_index]
    # stable descending sort keeps ascending index order among equal losses
    order = torch.sort(loss, descending=True, stable=True).indices
    return torch.sort(idx[order[:k]]).values


def select_random(indices: torch.Tensor, keep: float, generator: torch.Generator) -> torch.Tensor:
    """Keep a uniformly random ``ceil(keep * n)`` of ``indices`` (the random-drop control), sorted ascending.

    Draws only from ``generator`` and sorts the input first, so the result depends on the set of indices
    and the generator state, not on their order.
    """
    _check_pair(indices)
    idx = torch.sort(indices.detach().to("cpu", torch.int64)).values
    k = keep_count(idx.numel(), keep)
    perm = torch.randperm(idx.numel(), generator=generator)
    return torch.sort(idx[perm[:k]]).values
