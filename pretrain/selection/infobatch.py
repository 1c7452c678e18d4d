"""InfoBatch (Qin et al., ICLR 2024): prune part of the well-learned samples each epoch, rescale the rest.

Pure parts, no model and no global RNG:

* ``well_learned(scores)``: ``s_i < mean(s)`` over the scored samples (NaN = never scored = never
  well-learned, so the first epoch prunes nothing);
* ``infobatch_select(scores, prune_ratio, generator)``: keep a uniform ``floor((1 - r) |L|)`` of the
  well-learned set L with loss weight ``1 / (1 - r)``, every other sample with weight 1;
* ``pruning_epochs(E, delta)`` / ``prunes(epoch, E, delta)``: pruning on 1-based epochs
  ``e <= ceil(delta * E)``, the full data with weights 1 afterwards (the paper's annealing);
* ``cost_bound(N, E, params)``: the least relative cost a run can reach (its real cost depends on the
  losses and is known only after training).

Counts use exact decimal arithmetic (``0.3 * 10`` is 3.0000000000000004 in floating point; the
official code's ``int((1 - 0.9) * 10)`` is 0 where the user meant 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

__all__ = [
    "InfoBatchParams",
    "InfoBatchSelection",
    "cost_bound",
    "infobatch_select",
    "kept_well_learned_count",
    "prunes",
    "pruning_epochs",
    "well_learned",
]


def _exact(x: float) -> Fraction:
    """The decimal the user wrote (``Fraction('0.875')`` = 7/8, not the binary float's expansion)."""
    return Fraction(repr(float(x)))


@dataclass(frozen=True)
class InfoBatchParams:
    """prune_ratio r: share of the well-learned samples pruned per epoch, in [0, 1) (paper: 0.5);
    delta: share of the epochs that prune, in (0, 1] (paper: 0.875); the rest train the full data."""

    prune_ratio: float = 0.5
    delta: float = 0.875

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, run: object = None) -> None:
        """Raise ``ValueError`` with one line naming the first bad parameter."""
        r, d = self.prune_ratio, self.delta
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise ValueError(f"method.prune_ratio (InfoBatch's r) must be in [0, 1), got {r!r}")
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 1:
            raise ValueError(f"method.delta (InfoBatch's share of pruning epochs) must be in (0, 1], got {d!r}")

    @property
    def weight(self) -> float:
        """Loss weight ``1 / (1 - r)`` of a kept well-learned sample (exact: r=0.5 -> 2.0)."""
        return float(1 / (1 - _exact(self.prune_ratio)))


def pruning_epochs(epochs: int, delta: float) -> int:
    """Number of leading (1-based) epochs that prune: ``ceil(delta * E)`` in exact arithmetic.

    The paper anneals "when epoch t >= delta * C" with 0-based t, i.e. it prunes for t < delta * C,
    which in 1-based epochs is ``e <= ceil(delta * E)`` (E=200, delta=0.875: epochs 1-175 prune,
    176-200 train the full data). The official code compares its 0-based counter with
    ``<= delta * E`` and so prunes one epoch more (1-176); we follow the paper's text.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return math.ceil(_exact(delta) * epochs)


def prunes(epoch: int, epochs: int, delta: float) -> bool:
    """Whether 1-based ``epoch`` of ``epochs`` prunes (``1 <= epoch <= ceil(delta * E)``)."""
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must be in [1, {epochs}], got {epoch}")
    return epoch <= pruning_epochs(epochs, delta)


def well_learned(scores: torch.Tensor) -> torch.Tensor:
    """Boolean mask of ``s_i < mean(s)``, the mean taken over the scored (non-NaN) entries.

    NaN (never scored) is never well-learned; a score equal to the mean is not well-learned (strict
    ``<``, as in the paper and the official code). The mean is computed in float64 over the stored
    float32 scores, so the comparison is deterministic and independent of summation order on devices.
    """
    if scores.dim() != 1:
        raise ValueError(f"scores must be a 1-D tensor, got shape {tuple(scores.shape)}")
    s = scores.detach().to("cpu", torch.float64)
    scored = ~torch.isnan(s)
    if not bool(scored.any()):
        return torch.zeros_like(scored)
    mean = s[scored].mean()
    return scored & (s < mean)


def kept_well_learned_count(num_well_learned: int, prune_ratio: float) -> int:
    """``floor((1 - r) * |L|)`` in exact arithmetic: how many well-learned samples stay."""
    if num_well_learned < 0:
        raise ValueError(f"|L| must be >= 0, got {num_well_learned}")
    return math.floor((1 - _exact(prune_ratio)) * num_well_learned)


@dataclass(frozen=True)
class InfoBatchSelection:
    """``kept``: sorted int64 dataset indices trained this epoch; ``weights``: float32, one per kept
    index (``1 / (1 - r)`` for the kept well-learned samples, 1 otherwise); ``num_well_learned``: |L|."""

    kept: torch.Tensor
    weights: torch.Tensor
    num_well_learned: int

    def weight_table(self, num_samples: int) -> torch.Tensor:
        """Weights as a length-N float32 table (1 for samples not kept: they are not trained)."""
        table = torch.ones(num_samples, dtype=torch.float32)
        table[self.kept] = self.weights
        return table


def infobatch_select(scores: torch.Tensor, prune_ratio: float, generator: torch.Generator) -> InfoBatchSelection:
    """One epoch's InfoBatch subset from the score table (index i = dataset sample i, NaN = unscored).

    A uniformly random ``floor((1 - r) |L|)`` of the well-learned set L, drawn without replacement with
    one ``torch.randperm`` of ``|L|`` from ``generator`` (L in ascending index order, so the result
    depends on the scores and the generator state only), keeps weight ``1 / (1 - r)``; every other
    sample is kept with weight 1. The generator is advanced only when L is not empty.
    """
    learned = well_learned(scores)
    candidates = torch.nonzero(learned).flatten()
    k = kept_well_learned_count(candidates.numel(), prune_ratio)
    if candidates.numel():
        survivors = candidates[torch.randperm(candidates.numel(), generator=generator)[:k]]
    else:
        survivors = candidates
    keep = ~learned
    keep[survivors] = True
    kept = torch.nonzero(keep).flatten()
    weights = torch.ones(kept.numel(), dtype=torch.float32)
    if survivors.numel():
        weight = InfoBatchParams(prune_ratio=prune_ratio).weight
        weights[torch.searchsorted(kept, torch.sort(survivors).values)] = weight
    return InfoBatchSelection(kept=kept, weights=weights, num_well_learned=int(candidates.numel()))


def cost_bound(num_samples: int, epochs: int, params: InfoBatchParams) -> tuple[list[int], float]:
    """The fewest samples each epoch can train, and the resulting least relative cost.

    Epoch 1 trains everything (nothing is scored yet). A later pruning epoch prunes
    ``|L| - floor((1 - r)|L|) = ceil(r |L|)`` samples, and ``|L| <= N - 1`` (not every score can lie
    strictly below the mean), so it trains at least ``N - ceil(r (N - 1))``. Epochs after
    ``ceil(delta * E)`` train all N. Real runs train more: |L| is typically well below N - 1.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    least = num_samples - math.ceil(_exact(params.prune_ratio) * (num_samples - 1))
    last = pruning_epochs(epochs, params.delta)
    sizes = [num_samples if e == 1 or e > last else least for e in range(1, epochs + 1)]
    return sizes, sum(sizes) / (epochs * num_samples)
