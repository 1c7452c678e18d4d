"""Selective Backprop (Composer form): the rank law (chi-square with power), the draw, the schedule."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from helpers import gloo_ranks, harness
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


@pytest.mark.parametrize("keep, n", [(0.29, 100), (0.57, 100), (0.5, 33), (0.7, 10), (0.1, 30)])
def test_counts_and_sizes_are_composers_float_ones(keep, n):
    # Composer: n_select = int(keep * N); the scoring image is F.interpolate(scale_factor=keep,
    # recompute_scale_factor=False)'s size -- both in floating point (0.29 * 100 = 28.999999999999996 -> 28)
    assert kept_count(n, keep) == int(keep * n)
    size = torch.nn.functional.interpolate(torch.zeros(1, 1, n, n), scale_factor=keep, mode="bilinear",
                                           align_corners=False, recompute_scale_factor=False).shape[-1]
    assert score_resolution(n, keep) == size


def test_nan_ranks_above_inf_as_in_composers_argsort():
    losses = torch.tensor([math.nan, math.inf, 0.1, math.nan])
    ascending = torch.argsort(losses[:3])  # Composer's ranking (distinct values: no tie to break)
    assert ascending.tolist() == [2, 1, 0]
    # ours for the same batch: keep 0.7 of 3 draws 2 ranks; the ranks map to positions through that order
    for seed in range(5):
        ranks = torch.multinomial(rank_probabilities(3, 0.7), 2, replacement=False, generator=gen(seed))
        assert torch.equal(select_by_loss(losses[:3], 0.7, gen(seed)), ascending[ranks].sort().values)
    # two NaNs keep their batch order (stable): ascending positions 2, 1, 0, 3
    for seed in range(5):
        ranks = torch.multinomial(rank_probabilities(4, 0.5), 2, replacement=False, generator=gen(seed))
        assert torch.equal(select_by_loss(losses, 0.5, gen(seed)), torch.tensor([2, 1, 0, 3])[ranks].sort().values)


@pytest.mark.parametrize("kwargs, message", [
    (dict(start=0.9, end=0.5), "method.start=0.9 must be < method.end=0.5"),
    (dict(start=0.5, end=0.5), "must be < method.end"),
    (dict(keep=0.0), r"method.keep .* must be in \(0, 1\], got 0.0"),
    (dict(keep=1.5), "keep"),
    (dict(scale_factor=0.0), "scale_factor"),
    (dict(interrupt=-1), "interrupt"),
    (dict(interrupt=1.5), "interrupt"),
    (dict(start=-0.1), "start"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelectiveBackpropParams(**kwargs)


# -- the adapter (pretrain/methods/selective_backprop.py) -----------------------------------------------
CFG = dict(type="selective_backprop", start=0.5, end=0.9, keep=0.5, scale_factor=0.5, interrupt=2)


def run_info(n=100, epochs=4, batch=10, world=1, rank=0):
    from pretrain.methods.base import RunInfo

    return RunInfo(num_samples=n, epochs=epochs, batch_size=batch, img_size=32, world_size=world, rank=rank, seed=7)


def test_plan_counts_the_dropped_and_the_scored_samples():
    from pretrain.methods import build_method

    plan = build_method(CFG, run_info()).plan()
    # 10 steps of 10 per epoch, T = 40: the window is steps 20-35; odd batches of an epoch train in full,
    # so epoch 3 selects at batches 0, 2, 4, 6, 8 and epoch 4 at 0, 2, 4 (steps 30, 32, 34): 5 kept of 10
    assert plan.sizes == (100, 100, 100 - 5 * 5, 100 - 3 * 5) and plan.bound is None
    # 8 scored batches of 10 at 16 px of 32: a forward is 1/3 of a training step, (16/32)^2 of the pixels
    assert plan.flops_cost == pytest.approx((360 + 80 * 0.25 / 3) / 400)
    # a batch that would keep one sample trains in full: batch 3, keep 0.5 -> never selects
    tiny = build_method({**CFG, "keep": 0.5}, run_info(n=12, batch=3)).plan()
    assert tiny.sizes == (12,) * 4


class Recorder:
    """The trainer's services around a real model: counts the scoring forwards."""

    def __init__(self, model):
        self.model, self.device, self.counted = model, torch.device("cpu"), []

    def count_forwards(self, resolution, samples):
        self.counted.append((resolution, samples))


def tiny_model():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    with torch.no_grad():  # move the BN statistics off their init so a silent update would show
        model.train()
        model(torch.randn(8, 3, 32, 32))
    return model


def images_of(indices: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(indices.sum()))
    return torch.randn(indices.numel(), 3, 32, 32, generator=g)


def simulate(world=1, rank=0, steps=None, method=None):
    """Run the method's select over the shard of a uniform epoch order; returns the picked indices per step."""
    from pretrain.methods import build_method
    from pretrain.methods.base import Batch, StepInfo

    model = tiny_model()
    if method is None:
        method = build_method(CFG, run_info(world=world, rank=rank))
        method.build_feed(None, 0)
        method.setup(Recorder(model))
    picks = []
    for epoch in range(1, 5):
        method.sampler.set_epoch(epoch)
        order = torch.tensor(list(method.sampler))
        for s in range(10):
            t = (epoch - 1) * 10 + s
            if steps is not None and t not in steps:
                continue
            idx = order[s * 10:(s + 1) * 10]
            batch = Batch(images_of(idx), idx % 10, idx)
            picks.append(method.select(batch, StepInfo(epoch, s, 10, t)).indices)
    return picks, method


def test_select_scores_without_side_effects_and_draws_from_the_rank_generator():
    from pretrain.selection.samplers import derive_seed
    from pretrain.selection.scoring import score_losses

    picks, method = simulate()
    model = method.services.model
    sizes = [p.numel() for p in picks]
    want = [5 if (20 <= t < 36 and (t % 10) % 2 == 0) else 10 for t in range(40)]
    assert sizes == want
    assert method.services.counted == [(16, 10)] * 8  # 8 scored batches of 10 at floor(0.5 * 32) px
    # the picks are the documented draw: score at 16 px, then select_by_loss from the (seed, rank) generator
    g = torch.Generator().manual_seed(derive_seed(7, "selective_backprop/0"))
    fresh = tiny_model()
    for t, got in enumerate(picks):
        if want[t] == 10:
            continue
        epoch, s = divmod(t, 10)
        method.sampler.set_epoch(epoch + 1)
        idx = torch.tensor(list(method.sampler))[s * 10:(s + 1) * 10]
        losses = score_losses(fresh, images_of(idx), idx % 10, 16)
        assert torch.equal(got, idx[select_by_loss(losses, 0.5, g)]), t
    # scoring left the model as it was: parameters and BatchNorm statistics bit-identical to a fresh copy
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_rank_state_resumes_the_draws_and_ranks_draw_apart():
    from pretrain.methods import build_method

    full, _ = simulate()
    # stop after step 24, save the rank state, resume in a fresh method: steps 25-39 draw the same
    first, method = simulate(steps=set(range(25)))
    state = method.rank_state_dict()
    resumed = build_method(CFG, run_info())
    resumed.build_feed(None, 0)
    resumed.setup(Recorder(tiny_model()))
    resumed.load_rank_state_dict(state)
    rest, _ = simulate(steps=set(range(25, 40)), method=resumed)
    assert all(torch.equal(a, b) for a, b in zip(full, first + rest, strict=True))
    with pytest.raises(ValueError, match="rank 0 loaded on rank 1"):
        other = build_method(CFG, run_info(world=2, rank=1))
        other.load_rank_state_dict(state)


def test_two_gloo_ranks_select_per_device_like_one_process_per_shard(tmp_path):
    got = gloo_ranks.run_ranks(__file__, tmp_path)
    for r in range(2):  # each rank = a single process given that rank's shard and generator
        want, _ = simulate(world=2, rank=r, steps=set(range(20, 40)))
        assert len(got[r]) == len(want) and all(torch.equal(a, b) for a, b in zip(got[r], want, strict=True))
    # the two ranks trained disjoint samples of each step and drew with different generators
    assert all(not set(a.tolist()) & set(b.tolist()) for a, b in zip(*got, strict=True))


def rank_job(world: int, rank: int, out) -> object:
    return simulate(world=world, rank=rank, steps=set(range(20, 40)))[0]


if __name__ == "__main__":
    gloo_ranks.serve(rank_job)


# -- a real kill -9 inside an epoch, then --resume ---------------------------------------------------------


# Extended: tests/test_reliability/test_interrupt.py kills and resumes this method's tiny config in CI on
# 1 and 2 ranks; this one aims the kill at the epoch where the rule is active.
@pytest.mark.extended
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    """4 epochs of 43 steps: SB selects in steps 86-154, i.e. epochs 3-4; killed inside epoch 3."""
    options = ["schedule.epochs=4", "schedule.milestones=[3]"]
    final = harness.check_kill_and_resume("tiny_digits_selective_backprop.py", tmp_path, options, kill_in=3,
                                            epochs=4)
    log = harness.log_lines(tmp_path / "uninterrupted")
    assert [x["selection_flops"] > 0 for x in log[:4]] == [False, False, True, True]
    assert "generator" in final["ranks"][0]["method"]


@pytest.mark.parametrize("options, message", [
    (["method.keep=0"], "method.keep (Selective Backprop's kept share of a batch) must be in (0, 1], got 0"),
    (["method.start=0.9", "method.end=0.5"], "method.start=0.9 must be < method.end=0.5 (Selective Backprop's active window)"),
])
def test_bad_params_are_one_error_line_and_exit_2_before_training(options, message, tmp_path):
    assert harness.rejected("tiny_digits_selective_backprop.py", tmp_path / "run", options) == [f"error: {message}"]
