"""SeTa: the sliding window, the pruning/annealing boundary, loss groups by seeded k-means (ties, few
distinct losses), unscored (NaN/inf) samples, the selection on hand-made score tables, the adapter, two
gloo ranks against one process, bad parameters.

Kill -9 / preemption and resume of ``tiny_digits_seta.py`` on 1 and 2 ranks:
``tests/test_reliability/test_interrupt.py`` (its glob and ``has_cross_rank_state``); the kill inside a
windowed epoch below runs under ``-m extended``."""
from __future__ import annotations

import math

import pytest
import torch
from helpers import gloo_ranks, harness

from pretrain.errors import ConfigError
from pretrain.selection.loss_table import keep_latest
from pretrain.selection.samplers import derive_seed
from pretrain.selection.seta import (
    SeTaParams,
    anneal_select,
    cost_bound,
    kept_count,
    loss_groups,
    pruning_epochs,
    seta_select,
    window,
    window_size,
)

NAN = math.nan


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_window_slides_from_easy_to_hard_and_wraps():
    # G = 5, w = round(3.0) = 3: t = 0 all groups, then starts 1, 2, 0, 1, 2, ... (t mod 3)
    assert [window(t, 5, 0.6) for t in range(7)] == [(0, 5), (1, 4), (2, 5), (0, 3), (1, 4), (2, 5), (0, 3)]
    # round half to even, exactly (Python's round): 5 x 0.5 = 2.5 -> 2, 10 x 0.25 -> 2, 10 x 0.35 -> 4
    assert (window_size(5, 0.5), window_size(10, 0.25), window_size(10, 0.35)) == (2, 2, 4)
    assert [window(t, 4, 1.0) for t in range(3)] == [(0, 4)] * 3  # the whole set: no sliding
    assert window(5, 1, 0.6) == (0, 1)  # fewer groups than configured (ties): at least one group


def test_pruning_epochs_counts_and_bound():
    assert pruning_epochs(300, 0.875) == 262 and pruning_epochs(6, 0.875) == 5 and pruning_epochs(8, 0.875) == 7
    assert pruning_epochs(10, 0.7) == 7  # exact: 0.7 x 10 is 7, not 7.000000000000001 -> still 7 by floor
    assert kept_count(100, 0.07) == 93 and kept_count(1347, 0.1) == 1212 and kept_count(10, 0.0) == 10
    assert cost_bound(10, 3, SeTaParams(prune_ratio=0.25)) == [7, 7, 7]


def test_loss_groups_by_centre_with_ties():
    scores = torch.tensor([5.0, 0.1, 1.0, 0.12, 5.2, 1.05, 0.11])
    for seed in range(5):  # well separated: every seeded init finds the three clusters, ordered by centre
        groups, g = loss_groups(scores, 3, seed)
        assert g == 3 and groups.tolist() == [2, 0, 1, 0, 2, 1, 0]
    # equal losses always share a group; fewer distinct losses than G: one group per distinct value
    tied = torch.tensor([0.5, 0.5, 0.5, 2.0, 2.0, 0.5])
    groups, g = loss_groups(tied, 5, 0)
    assert g == 2 and groups.tolist() == [0, 0, 0, 1, 1, 0]
    assert loss_groups(torch.full((4,), 0.3), 5, 0)[0].tolist() == [0] * 4
    # many ties among many values: each value's samples land in one group, groups ordered by value
    x = torch.arange(40, dtype=torch.float64).repeat_interleave(5)
    groups, g = loss_groups(x, 6, 3)
    assert g == 6 and all(groups[x == v].unique().numel() == 1 for v in range(40))
    assert bool((groups[1:] >= groups[:-1]).all())  # monotone in the loss: contiguous ranges
    assert torch.equal(loss_groups(x, 6, 3)[0], groups)  # seeded: the same again
    with pytest.raises(ValueError, match="finite"):
        loss_groups(torch.tensor([1.0, NAN]), 2, 0)


# four well separated loss clusters over 20 samples (sizes 6, 5, 5, 4), then one unscored and one inf
SCORES = torch.tensor([0.1, 3.0, 1.0, 0.11, 6.0, 1.02, 0.12, 3.1, 6.1, 1.01,
                       0.13, 3.2, 0.1, 1.03, 6.2, 3.05, 0.14, 1.04, 3.15, 6.05])
GROUP_OF = {0.1: 0, 0.11: 0, 0.12: 0, 0.13: 0, 0.14: 0, 1.0: 1, 1.01: 1, 1.02: 1, 1.03: 1, 1.04: 1,
            3.0: 2, 3.05: 2, 3.1: 2, 3.15: 2, 3.2: 2, 6.0: 3, 6.05: 3, 6.1: 3, 6.2: 3}


def in_groups(scores: torch.Tensor, lo: int, hi: int) -> list[int]:
    return [i for i, s in enumerate(scores.tolist()) if lo <= GROUP_OF[round(s, 2)] < hi]


def test_selection_on_a_hand_made_table():
    p = SeTaParams(prune_ratio=0.0, num_group=4, window_scale=0.5, delta=1.0)  # w = 2 of 4, starts t mod 3
    for t, (lo, hi) in enumerate([(0, 4), (1, 3), (2, 4), (0, 2)]):
        sel = seta_select(SCORES, p, t, gen(0), kmeans_seed=7)
        assert sel.kept.tolist() == in_groups(SCORES, lo, hi), t
        assert sel.window == (lo, hi) and sel.group_sizes == (6, 5, 5, 4) and sel.candidates == 20
    # unscored (NaN) and non-finite (inf) samples cannot be ranked: they train whenever drawn
    scores = torch.cat([SCORES, torch.tensor([NAN, math.inf])])
    sel = seta_select(scores, p, 1, gen(0), kmeans_seed=7)
    assert sel.kept.tolist() == in_groups(SCORES, 1, 3) + [20, 21] and sel.unscored == 2


def test_random_draw_then_groups():
    p = SeTaParams(prune_ratio=0.25, num_group=4, window_scale=0.5, delta=1.0)
    drawn = torch.sort(torch.randperm(20, generator=gen(3))[:15]).values  # floor(0.75 x 20) = 15, documented draw
    sel = seta_select(SCORES, p, 2, gen(3), kmeans_seed=1)
    assert sel.candidates == 15 and set(sel.kept.tolist()) <= set(drawn.tolist())
    groups, g = loss_groups(SCORES[drawn].double(), 4, 1)
    want = drawn[(groups >= 2) & (groups < 4)]
    assert sel.kept.tolist() == want.tolist() and sum(sel.group_sizes) == 15
    # too few kept for BatchNorm: the whole draw trains
    assert seta_select(SCORES, p, 2, gen(3), 1, min_train=want.numel() + 1).kept.tolist() == drawn.tolist()
    assert torch.equal(anneal_select(20, p, gen(3)), drawn)  # annealing: the plain draw


@pytest.mark.parametrize("kwargs, message", [
    (dict(prune_ratio=1.0), r"method.prune_ratio \(SeTa's random drop\) must be in \[0, 1\), got 1.0"),
    (dict(num_group=0), r"method.num_group .* must be an integer >= 1, got 0"),
    (dict(num_group=2.5), "num_group"),
    (dict(window_scale=0.0), r"method.window_scale .* must be in \(0, 1\]"),
    (dict(num_group=1, window_scale=0.4), r"round\(1 x 0.4\) = 0"),
    (dict(delta=0.0), "delta"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SeTaParams(**kwargs)


# -- the adapter (pretrain/methods/seta.py), one process and two real gloo ranks ---------------------------
N, EPOCHS, BATCH, SEED = 601, 6, 32, 9
CFG = dict(type="seta", prune_ratio=0.2, num_group=4, window_scale=0.5, delta=0.7)  # prunes 1-4, anneals 5-6
CORE = SeTaParams(prune_ratio=0.2, num_group=4, window_scale=0.5, delta=0.7)


def loss_of(indices: torch.Tensor, epoch: int) -> torch.Tensor:
    """Hand-made training losses, four levels with a per-sample wiggle that moves with the epoch."""
    i = indices.double()
    return ((indices % 4).double() + 0.1 * torch.sin(0.3 * i + epoch)).float()


def simulate(world: int = 1, rank: int = 0) -> list[dict]:
    from pretrain.methods import build_method
    from pretrain.methods.base import RunInfo, StepInfo, StepRecord

    run = RunInfo(num_samples=N, epochs=EPOCHS, batch_size=BATCH, img_size=32, world_size=world, rank=rank, seed=SEED)
    method = build_method(CFG, run)
    method.build_feed(None, 0)
    out = []
    for epoch in range(1, EPOCHS + 1):
        method.begin_epoch(epoch)
        method.sampler.set_epoch(epoch)
        order = torch.tensor(list(method.sampler))
        for s, lo in enumerate(range(0, order.numel(), BATCH)):
            idx = order[lo:lo + BATCH]
            step = StepInfo(epoch, s, math.ceil(order.numel() / BATCH), 0)
            padded = rank + world * (lo + torch.arange(idx.numel())) >= method.sampler.subset_size
            method.record(StepRecord(idx, loss_of(idx, epoch) + 100 * padded, torch.zeros(idx.numel(), 3), idx % 3,
                                     step))
        subset = method.sampler.subset.clone()
        out.append({"subset": subset, "log": method.end_epoch(epoch).log, "scores": method.scores.clone()})
    return out


def expected_subsets() -> list[torch.Tensor]:
    """The same epochs from the rule alone: scores are each sample's last training loss."""
    scores, out = torch.full((N,), NAN), []
    for epoch in range(1, EPOCHS + 1):
        g = gen(derive_seed(SEED, "seta", epoch))
        if epoch <= pruning_epochs(EPOCHS, CORE.delta):
            kept = seta_select(scores, CORE, epoch - 1, g, derive_seed(SEED, "seta/kmeans", epoch), 2).kept
        else:
            kept = anneal_select(N, CORE, g)
        out.append(kept)
        table = torch.full((N,), NAN)
        table[kept] = loss_of(kept, epoch)
        keep_latest(scores, table)
    return out


def check_against_rule(got: list[dict]) -> None:
    want = expected_subsets()
    assert [g["subset"].tolist() for g in got] == [w.tolist() for w in want]
    sizes = [w.numel() for w in want]
    k = kept_count(N, CORE.prune_ratio)
    assert sizes[0] == k and max(sizes[1:4]) < k and sizes[4:] == [k, k]  # draw, windows, annealing
    assert got[0]["log"]["next_window"] == [1, 3] and got[1]["log"]["next_window"] == [2, 4]
    assert got[3]["log"] == {"next_kept": k}  # epoch 5 anneals


def test_adapter_prunes_by_window_then_anneals():
    check_against_rule(simulate())


@pytest.mark.slow
def test_two_gloo_ranks_agree_with_one_process(tmp_path):
    ranks, one = gloo_ranks.run_ranks(__file__, tmp_path), simulate()
    for r in range(2):
        for epoch, (a, b) in enumerate(zip(ranks[r], one, strict=True), start=1):
            assert torch.equal(a["subset"], b["subset"]), (r, epoch)
            # padding repeats (recorded +100) never reach the score table
            assert torch.equal(a["scores"].nan_to_num(-1), b["scores"].nan_to_num(-1)), (r, epoch)
            assert a["log"] == b["log"], (r, epoch)
    check_against_rule(one)


def rank_job(world: int, rank: int, out) -> object:
    return simulate(world, rank)


if __name__ == "__main__":
    gloo_ranks.serve(rank_job)


def test_plan_is_a_bound_and_bad_keys_are_config_errors():
    from pretrain.methods import build_method
    from pretrain.methods.base import RunInfo

    plan = build_method(CFG, RunInfo(num_samples=10, epochs=6)).plan()
    assert plan.bound == "at most" and plan.sizes == (8,) * 6 and plan.flops_cost == pytest.approx(0.8)
    with pytest.raises(ConfigError, match="did you mean num_group"):
        build_method({"type": "seta", "num_groups": 5}, RunInfo(num_samples=10, epochs=6))


def test_bad_params_are_one_error_line_and_exit_2_before_training(tmp_path):
    lines = harness.rejected("tiny_digits_seta.py", tmp_path / "run", ["method.window_scale=1.5"])
    assert lines == ["error: method.window_scale (SeTa's window, a share of the groups) must be in (0, 1], got 1.5"]


@pytest.mark.extended
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Killed inside epoch 3, which trains a window of loss groups over a random draw."""
    harness.check_kill_and_resume("tiny_digits_seta.py", tmp_path, [], kill_in=3, epochs=6)
    log = harness.log_lines(tmp_path / "uninterrupted")
    assert log[1]["next_window"] == [2, 5] and log[2]["kept_fraction"] < 0.9
