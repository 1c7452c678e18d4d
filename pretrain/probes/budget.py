"""How many images the probes may use: a share of the run's planned training FLOPs (default 5 %).

The bound is for all probes of a run together: ``budget x planned training FLOPs``, split evenly over the
probe epochs and, within one probe, evenly over its tasks. Counts not set in the config are the largest
that fit (at most the data there is); counts set explicitly are kept, and a plan over the bound is
refused with one line saying what to change. Costs are forward FLOPs as :mod:`pretrain.cost` counts
them (a multiply-add is 2): kNN embeds ``bank + queries`` images at the training resolution; the dense
probe embeds its images at ``dense.size`` and trains a 1x1-conv head (``TRAIN_FLOPS_PER_FORWARD`` x its
forward per step).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..cost import TRAIN_FLOPS_PER_FORWARD
from .dense import DenseSettings
from .knn import KnnSettings

MIN_QUERIES, MIN_DENSE_TRAIN = 50, 8  # below these the numbers are noise: refuse instead
DEFAULT_DENSE_TRAIN, DEFAULT_DENSE_VAL = 32, 8  # the embedded tiny scenes drawn when the budget allows


class ProbeBudgetError(ValueError):
    """The probes do not fit their budget; one line naming what to change."""


def probe_epochs(epochs: int, every: int) -> list[int]:
    """Epochs after which a probe runs: every ``every``-th and the last."""
    return [e for e in range(1, epochs + 1) if e % every == 0 or e == epochs]


def head_forward_flops(channels: list[int], reductions: list[int], size: tuple[int, int], num_classes: int,
                       images: int) -> float:
    """FLOPs of the 1x1-conv head's forward on ``images`` images: sum over scales of 2 C K h w."""
    h, w = size
    return float(images * sum(2 * c * num_classes * math.ceil(h / r) * math.ceil(w / r)
                              for c, r in zip(channels, reductions, strict=True)))


@dataclass(frozen=True)
class ProbeCosts:
    """Per-image forward FLOPs and the dense head's shape, read from the model."""

    knn_image: float  # one forward at the training resolution
    dense_image: float  # one forward at dense.size
    channels: list[int]  # of the stages the dense head reads (stride >= 4)
    reductions: list[int]
    num_classes: int  # dense classes


def plan_probe(tasks: list[str], per_probe_flops: float, costs: ProbeCosts, knn: KnnSettings,
               dense: DenseSettings, train_size: int, val_size: int,
               dense_available: tuple[int, int] = (DEFAULT_DENSE_TRAIN, DEFAULT_DENSE_VAL)
               ) -> tuple[KnnSettings, DenseSettings, float]:
    """Settings with every sample count filled in, and the planned FLOPs of one probe.

    With both tasks the dense probe gets half the budget (more if its fixed part -- the head's training
    and the val images -- needs it, as long as kNN keeps its minimum); kNN gets what the dense probe
    leaves.
    """
    planned = 0.0
    if "dense" in tasks:
        share = per_probe_flops
        if "knn" in tasks:
            share = max(per_probe_flops / 2, _dense_fixed(costs, dense, dense_available)
                        + MIN_DENSE_TRAIN * costs.dense_image)
            share = min(share, per_probe_flops - (knn.k + MIN_QUERIES) * costs.knn_image)
        dense, planned = _plan_dense(share, costs, dense, dense_available)
    if "knn" in tasks:
        knn = _plan_knn(per_probe_flops - planned, costs.knn_image, knn, train_size, val_size)
        planned += costs.knn_image * (knn.bank + knn.queries)
    if planned > per_probe_flops * (1 + 1e-9):
        raise ProbeBudgetError(f"one probe needs {planned:.3g} FLOPs, over its budget of {per_probe_flops:.3g} "
                               "(lower probe.knn / probe.dense counts, probe less often with probe.every, "
                               "or raise probe.budget)")
    return knn, dense, planned


def _plan_knn(share: float, per_image: float, s: KnnSettings, train_size: int, val_size: int) -> KnnSettings:
    n = int(share // per_image)
    queries = s.queries if s.queries is not None else min(val_size, max(MIN_QUERIES, n // 4))
    bank = s.bank if s.bank is not None else min(train_size, n - min(queries, val_size))
    queries, bank = min(queries, val_size), min(bank, train_size)
    if bank < s.k or queries < MIN_QUERIES:
        raise ProbeBudgetError(f"the kNN probe's budget ({share:.3g} FLOPs) buys {n} images; it needs at least "
                               f"k={s.k} bank + {MIN_QUERIES} query images (raise probe.budget or probe.every)")
    return dataclasses.replace(s, bank=bank, queries=queries)


def _head_flops(c: ProbeCosts, s: DenseSettings, images: int) -> float:
    return head_forward_flops(c.channels, c.reductions, s.size, c.num_classes, images)


def _dense_fixed(c: ProbeCosts, s: DenseSettings, available: tuple[int, int]) -> float:
    """The head's training (its 1x1 convs run at each feature's own resolution) and the val images."""
    val = s.val_images if s.val_images is not None else available[1]
    return (TRAIN_FLOPS_PER_FORWARD * s.steps * _head_flops(c, s, s.batch_size)
            + val * (c.dense_image + _head_flops(c, s, 1)))


def _plan_dense(share: float, c: ProbeCosts, s: DenseSettings, available: tuple[int, int]
                ) -> tuple[DenseSettings, float]:
    val = s.val_images if s.val_images is not None else available[1]
    fixed = _dense_fixed(c, s, available)
    fits = int(max(0.0, share - fixed) // c.dense_image)
    train = s.train_images if s.train_images is not None else min(available[0], fits)
    if train < MIN_DENSE_TRAIN:
        raise ProbeBudgetError(f"the dense probe's budget ({share:.3g} FLOPs) leaves room for {train} training "
                               f"images of {s.size[0]}x{s.size[1]} (needs {MIN_DENSE_TRAIN}; lower probe.dense.size "
                               "or probe.dense.steps, or raise probe.budget or probe.every)")
    return dataclasses.replace(s, train_images=train, val_images=val), fixed + train * c.dense_image
