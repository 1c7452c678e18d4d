"""SeTa, scale efficient training (Zhou et al., CVPR 2025): random pruning, loss clusters, and a window of
clusters sliding from easy to hard; the last epochs anneal.

Each pruning epoch (1-based ``e <= floor(delta * E)``, the official sampler's ``iterations > delta * E``
test; ``t = e - 1``):

1. a uniform random ``floor((1 - r) N)`` of the data is drawn (``r`` = ``prune_ratio``);
2. its samples with a score (the last training loss, finite) are grouped into ``G`` clusters of their
   scores by k-means (scikit-learn's ``KMeans``, k-means++ with a seeded init, one thread), ordered by
   centre, easiest first;
3. epoch ``t = 0`` trains every group; afterwards a window of ``w = round(G * window_scale)`` consecutive
   groups, starting at group ``t mod (G - w + 1)``, trains: the window slides from easy to hard and wraps.

Samples without a score (never trained, or a non-finite loss) cannot be ranked: they train whenever the
random draw picks them. An annealing epoch trains a uniform random ``floor((1 - r) N)``.

Pure parts, no model and no global RNG (every draw from an explicit generator or seed):
``SeTaParams``, ``pruning_epochs``, ``kept_count``, ``window``, ``loss_groups``, ``seta_select``,
``anneal_select``, ``cost_bound``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

__all__ = ["SeTaParams", "SeTaSelection", "anneal_select", "cost_bound", "kept_count", "loss_groups",
           "pruning_epochs", "seta_select", "window"]


def _exact(x: float) -> Fraction:
    return Fraction(repr(float(x)))


def _number(x: object) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


@dataclass(frozen=True)
class SeTaParams:
    """prune_ratio r: share dropped at random each epoch, in [0, 1) (official ImageNet script: 0.0; its
    CIFAR script 0.1); num_group G: loss clusters (ImageNet script: 5); window_scale: share of the groups
    the sliding window covers, in (0, 1] (ImageNet script: 0.6); delta: share of the epochs that prune,
    in (0, 1] (0.875); the rest anneal."""

    prune_ratio: float = 0.0
    num_group: int = 5
    window_scale: float = 0.6
    delta: float = 0.875

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, run: object = None) -> None:
        """Raise ``ValueError`` with one line naming the first bad parameter."""
        if not _number(self.prune_ratio) or not 0 <= self.prune_ratio < 1:
            raise ValueError(f"method.prune_ratio (SeTa's random drop) must be in [0, 1), got {self.prune_ratio!r}")
        g = self.num_group
        if isinstance(g, bool) or not isinstance(g, int) or g < 1:
            raise ValueError(f"method.num_group (SeTa's loss clusters) must be an integer >= 1, got {g!r}")
        if not _number(self.window_scale) or not 0 < self.window_scale <= 1:
            raise ValueError(f"method.window_scale (SeTa's window, a share of the groups) must be in (0, 1], "
                             f"got {self.window_scale!r}")
        if window_size(g, self.window_scale) < 1:
            raise ValueError(f"method.window_scale={self.window_scale} of {g} groups is an empty window "
                             f"(round({g} x {self.window_scale}) = 0)")
        if not _number(self.delta) or not 0 < self.delta <= 1:
            raise ValueError(f"method.delta (SeTa's share of pruning epochs) must be in (0, 1], got {self.delta!r}")


def pruning_epochs(epochs: int, delta: float) -> int:
    """Leading (1-based) epochs that prune: ``floor(delta * E)`` in exact arithmetic (the official sampler
    anneals when its 1-based counter exceeds ``delta * E``: E = 300, delta = 0.875 -> epochs 1-262)."""
    return math.floor(_exact(delta) * epochs)


def kept_count(num_samples: int, prune_ratio: float) -> int:
    """``floor((1 - r) N)`` in exact arithmetic (the official ``int(N * keep_ratio)``)."""
    return math.floor((1 - _exact(prune_ratio)) * num_samples)


def window_size(groups: int, window_scale: float) -> int:
    """``round(G * window_scale)``, ties to even as Python's ``round`` (exact: 5 x 0.5 = 2.5 -> 2)."""
    return round(groups * _exact(window_scale))


def window(t: int, groups: int, window_scale: float) -> tuple[int, int]:
    """Groups ``[start, stop)`` trained at pruning epoch ``t`` (0-based): all at ``t = 0``, then ``w`` of
    them from ``t mod (G - w + 1)``. ``w`` is at least 1 (few groups, e.g. ties, can round it to 0)."""
    if t < 0 or groups < 1:
        raise ValueError(f"need t >= 0 and groups >= 1, got {t}, {groups}")
    if t == 0:
        return 0, groups
    w = max(1, window_size(groups, window_scale))
    start = t % (groups - w + 1)
    return start, start + w


def loss_groups(scores: torch.Tensor, num_group: int, seed: int) -> tuple[torch.Tensor, int]:
    """``(group, G')``: each score's group, 0 = lowest centre .. G'-1, by 1-D k-means with ``G' = min(G,
    distinct scores)`` clusters (k-means++ init seeded by ``seed``, one thread: the same on every rank and
    machine). Equal scores always share a group (assignment is to the nearest centre)."""
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D, got shape {tuple(scores.shape)}")
    x = scores.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("loss_groups needs finite scores")
    distinct = int(torch.unique(x).numel())
    g = min(num_group, distinct)
    if g <= 1:
        return torch.zeros(x.numel(), dtype=torch.int64), min(1, x.numel())
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        km = KMeans(n_clusters=g, init="k-means++", n_init=1, random_state=seed % 2**32).fit(x.numpy()[:, None])
    labels = torch.from_numpy(km.labels_.astype(np.int64))
    present = torch.unique(labels)
    centres = torch.stack([x[labels == lab].mean() for lab in present])
    rank = torch.empty(int(present.max()) + 1, dtype=torch.int64)
    rank[present[torch.sort(centres, stable=True).indices]] = torch.arange(present.numel())
    return rank[labels], int(present.numel())


@dataclass(frozen=True)
class SeTaSelection:
    """What a pruning epoch trains: ``kept`` (sorted int64), the drawn ``candidates``, the group sizes
    among them (easiest first; unscored candidates are not in a group) and the window ``[start, stop)``."""

    kept: torch.Tensor
    candidates: int
    unscored: int
    group_sizes: tuple[int, ...]
    window: tuple[int, int]


def seta_select(scores: torch.Tensor, params: SeTaParams, t: int, generator: torch.Generator, kmeans_seed: int,
                min_train: int = 1) -> SeTaSelection:
    """Pruning epoch ``t`` (0-based): the random draw, the loss groups, the window. ``scores``: the last
    training loss per dataset index (NaN = none). Fewer than ``min_train`` kept: the whole draw trains."""
    n = scores.numel()
    drawn = torch.sort(torch.randperm(n, generator=generator)[:kept_count(n, params.prune_ratio)]).values
    s = scores.detach().to("cpu", torch.float64)[drawn]
    ranked = torch.isfinite(s)
    unscored, scored = drawn[~ranked], drawn[ranked]
    if scored.numel():
        groups, g = loss_groups(s[ranked], params.num_group, kmeans_seed)
        start, stop = window(t, g, params.window_scale)
        inside = scored[(groups >= start) & (groups < stop)]
        sizes = tuple(torch.bincount(groups, minlength=g).tolist())
    else:
        inside, sizes, (start, stop) = scored, (), (0, 0)
    kept = torch.sort(torch.cat([unscored, inside])).values
    if kept.numel() < min_train:
        kept = drawn
    return SeTaSelection(kept, int(drawn.numel()), int(unscored.numel()), sizes, (start, stop))


def anneal_select(num_samples: int, params: SeTaParams, generator: torch.Generator) -> torch.Tensor:
    """An annealing epoch: a uniform random ``floor((1 - r) N)`` of the data, sorted."""
    return torch.sort(torch.randperm(num_samples, generator=generator)[:kept_count(num_samples, params.prune_ratio)]).values


def cost_bound(num_samples: int, epochs: int, params: SeTaParams) -> list[int]:
    """The most each epoch can train: the random draw ``floor((1 - r) N)`` (every group in the window);
    annealing epochs train exactly that."""
    if num_samples < 1 or epochs < 1:
        raise ValueError(f"need num_samples >= 1 and epochs >= 1, got {num_samples}, {epochs}")
    return [kept_count(num_samples, params.prune_ratio)] * epochs
