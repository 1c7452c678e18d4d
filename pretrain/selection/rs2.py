"""RS2, repeated sampling of random subsets without replacement (Okanovic et al., ICLR 2024).

Each epoch trains a fresh random subset; across epochs the subsets are drawn *without replacement*:
a cycle is one random permutation of the data, cut into consecutive slices, one per epoch, so every
sample is trained once per cycle. When a cycle's remainder is shorter than the
epoch's size, that epoch takes the remainder and fills up with the head of the same permutation (the
samples of the cycle's first epoch; as the official code does), and the next epoch starts a new cycle.

Pure parts, no model and no global RNG:

* ``subset_sizes(N, fractions)``: ``ceil(f_e N)`` per epoch in exact decimal arithmetic (``keep_count``);
* ``cycle_positions(N, sizes)``: per epoch, its cycle and the position in that cycle's permutation where
  it starts (O(epochs), no permutation drawn);
* ``rs2_subset(N, sizes, epoch, seed)``: epoch ``epoch``'s subset, sorted, a function of its arguments
  alone (cycle ``c``'s permutation comes from a generator seeded by ``(seed, c)``).
"""

from __future__ import annotations

import torch

from .dar import keep_count
from .samplers import derive_seed

__all__ = ["cycle_permutation", "cycle_positions", "rs2_subset", "subset_sizes"]


def subset_sizes(num_samples: int, fractions: list[float]) -> list[int]:
    """``ceil(f_e * N)`` for each epoch's fraction ``f_e`` in (0, 1] (exact: 0.07 of 100 is 7)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    bad = [f for f in fractions if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1]
    if bad:
        raise ValueError(f"RS2 fractions must be in (0, 1], got {bad[0]!r}")
    return [keep_count(num_samples, f) for f in fractions]


def cycle_positions(num_samples: int, sizes: list[int]) -> list[tuple[int, int]]:
    """``(cycle, start)`` of every epoch: the 0-based cycle whose permutation it reads, from position ``start``.

    An epoch of size k at position p reads ``perm[p : p + k]``; if ``p + k > N`` it reads ``perm[p:]`` and
    ``perm[: p + k - N]``. A cycle ends when an epoch reaches or passes its end; the next starts at 0.
    """
    out, cycle, pos = [], 0, 0
    for k in sizes:
        if not 1 <= k <= num_samples:
            raise ValueError(f"an RS2 subset size must be in [1, {num_samples}], got {k}")
        out.append((cycle, pos))
        pos += k
        if pos >= num_samples:
            cycle, pos = cycle + 1, 0
    return out


def cycle_permutation(num_samples: int, cycle: int, seed: int) -> torch.Tensor:
    """The random order of cycle ``cycle`` (int64), from a generator seeded by ``(seed, cycle)`` alone."""
    g = torch.Generator().manual_seed(derive_seed(seed, "rs2", cycle))
    return torch.randperm(num_samples, generator=g)


def rs2_subset(num_samples: int, sizes: list[int], epoch: int, seed: int) -> torch.Tensor:
    """The sorted int64 subset of 1-based ``epoch`` (the same on every rank, after a resume, for any world)."""
    if not 1 <= epoch <= len(sizes):
        raise ValueError(f"epoch must be in [1, {len(sizes)}], got {epoch}")
    cycle, pos = cycle_positions(num_samples, sizes[:epoch])[-1]
    k, perm = sizes[epoch - 1], cycle_permutation(num_samples, cycle, seed)
    picked = perm[pos:pos + k]
    if pos + k > num_samples:  # the cycle's tail, filled from its head (disjoint: k <= N)
        picked = torch.cat([picked, perm[:pos + k - num_samples]])
    return torch.sort(picked).values
