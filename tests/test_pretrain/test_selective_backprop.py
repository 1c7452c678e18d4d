"""Selective Backprop (Composer form): the rank law (chi-square with power), the draw, the schedule."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import chisquare

from pretrain.selection.selective_backprop import (
    SelectiveBackpropParams,
    kept_count,
    rank_probabilities,
    score_resolution,
    select_by_loss,
    selecting_steps,
    selects,
)

# a batch in scrambled order: position -> 0-based ascending-loss rank
LOSSES = torch.tensor([0.3, 2.5, 0.1, 1.7, 0.9, 4.0])
RANKS = torch.tensor([1, 4, 0, 3, 2, 5])


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_rank_probabilities_values():
    # keep 0.5: exponent 1, quantiles (i + 0.5) / 4 = 1/8, 3/8, 5/8, 7/8 -> (2i + 1) / 16
    assert torch.allclose(rank_probabilities(4, 0.5), torch.tensor([1, 3, 5, 7], dtype=torch.float64) / 16)
    # keep 0.25: exponent 3 -> (2i + 1)^3 / (1 + 27 + 125 + 343)
    want = torch.tensor([1, 27, 125, 343], dtype=torch.float64) / 496
    assert torch.allclose(rank_probabilities(4, 0.25), want)
    assert torch.allclose(rank_probabilities(5, 1.0), torch.full((5,), 0.2, dtype=torch.float64))


def position_law(keep: float, offset: float) -> torch.Tensor:
    """P(position j drawn first) when rank r gets ∝ ((r + offset) / n)^(1/keep - 1)."""
    w = (RANKS.double() + offset) ** (1 / keep - 1)
    return w / w.sum()


def test_single_draw_follows_the_half_rank_law_and_rejects_near_misses():
    # keep = 0.25 of 6 keeps floor(1.5) = 1: each call is one draw from the rank law (exponent 3)
    trials, g, counts = 10000, gen(0), torch.zeros(6)
    for _ in range(trials):
        pos = select_by_loss(LOSSES, 0.25, g)
        assert pos.numel() == 1
        counts[pos] += 1
    right = trials * position_law(0.25, 0.5)
    assert chisquare(counts.numpy(), right.numpy()).pvalue > 1e-3
    # the same counts reject the law without the half-rank offset ((i + 1)/n, the online method's CDF),
    # the uniform law, and the law over descending ranks: the test has the power to fail
    for wrong in (position_law(0.25, 1.0), torch.full((6,), 1 / 6, dtype=torch.float64),
                  position_law(0.25, 0.5).flip(0)):
        assert chisquare(counts.numpy(), (trials * wrong).numpy()).pvalue < 1e-6


def successive_inclusion(p: list[float], k: int) -> torch.Tensor:
    """Exact inclusion probabilities of drawing k of n without replacement, each draw ∝ p."""
    incl = [0.0] * len(p)
    for seq in itertools.permutations(range(len(p)), k):
        prob, left = 1.0, 1.0
        for i in seq:
            prob *= p[i] / left
            left -= p[i]
        for i in seq:
            incl[i] += prob
    return torch.tensor(incl, dtype=torch.float64)


def test_batch_draw_is_sequential_without_replacement():
    # keep 0.5 of 6: 3 distinct positions per call
    trials, g, counts = 4000, gen(1), torch.zeros(6, dtype=torch.float64)
    for _ in range(trials):
        pos = select_by_loss(LOSSES, 0.5, g)
        assert pos.numel() == 3 and pos.unique().numel() == 3 and torch.equal(pos, pos.sort().values)
        counts[pos] += 1
    p = position_law(0.5, 0.5).tolist()
    exact = successive_inclusion(p, 3)
    assert exact.sum().item() == pytest.approx(3)
    z = (counts - trials * exact) / torch.sqrt(trials * exact * (1 - exact))
    assert z.abs().max() < 4  # Bonferroni-safe for 6 positions
    naive = 3 * torch.tensor(p)  # "k * p" is not the without-replacement law, and the test sees it
    assert ((counts - trials * naive) / torch.sqrt(trials * naive * (1 - naive))).abs().max() > 4


def test_draw_is_the_documented_one_ties_and_nan():
    # equal losses rank by position; the positions are then exactly multinomial's draw of ranks
    for seed in range(5):
        got = select_by_loss(torch.ones(8), 0.5, gen(seed))
        want = torch.multinomial(rank_probabilities(8, 0.5), 4, replacement=False, generator=gen(seed))
        assert torch.equal(got, want.sort().values)
    # NaN counts as the largest loss: ascending order of [nan, 0.1, 0.2] is positions 1, 2, 0
    for seed in range(5):
        got = select_by_loss(torch.tensor([math.nan, 0.1, 0.2]), 0.7, gen(seed))
        ranks = torch.multinomial(rank_probabilities(3, 0.7), 2, replacement=False, generator=gen(seed))
        assert torch.equal(got, torch.tensor([1, 2, 0])[ranks].sort().values)
    with pytest.raises(ValueError, match="keeps no sample"):
        select_by_loss(torch.ones(1), 0.5, gen(0))


def test_schedule_window_and_interrupt():
    p = SelectiveBackpropParams(start=0.5, end=0.9, keep=0.5, interrupt=2)
    # T = 20 steps of 5 batches per epoch: window 10 <= t < 18; batch b = t % 5 trains in full when
    # (b + 1) % 2 == 0, i.e. b = 1, 3 -> t = 11, 13, 16
    on = [t for t in range(20) if selects(t, 20, t % 5, p)]
    assert on == [10, 12, 14, 15, 17]
    assert selecting_steps(20, 5, p) == 5
    never_interrupted = SelectiveBackpropParams(interrupt=0)
    assert [t for t in range(20) if selects(t, 20, t % 5, never_interrupted)] == list(range(10, 18))
    assert selecting_steps(20, 5, SelectiveBackpropParams(interrupt=1)) == 0  # every batch is a full one
    assert selecting_steps(20, 5, SelectiveBackpropParams(keep=1.0)) == 0  # keeping all needs no scoring
    # the window is compared exactly: start=0.3 of T=10 starts at step 3
    assert selects(3, 10, 0, SelectiveBackpropParams(start=0.3, end=0.7, interrupt=0))
    assert not selects(7, 10, 0, SelectiveBackpropParams(start=0.3, end=0.7, interrupt=0))
    with pytest.raises(ValueError, match="step must be in"):
        selects(20, 20, 0, p)


def test_counts_and_scoring_resolution():
    assert kept_count(32, 0.5) == 16 and kept_count(3, 0.5) == 1 and kept_count(10, 0.7) == 7
    assert score_resolution(224, 0.5) == 112 and score_resolution(32, 1.0) == 32 and score_resolution(7, 0.5) == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(start=0.9, end=0.5), "start=0.9 must be < end=0.5"),
    (dict(start=0.5, end=0.5), "must be < end"),
    (dict(keep=0.0), r"keep must be in \(0, 1\], got 0.0"),
    (dict(keep=1.5), "keep"),
    (dict(scale_factor=0.0), "scale_factor"),
    (dict(interrupt=-1), "interrupt"),
    (dict(interrupt=1.5), "interrupt"),
    (dict(start=-0.1), "start"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelectiveBackpropParams(**kwargs)
