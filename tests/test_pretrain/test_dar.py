"""DaR: schedule, cost accounting against the published tables, and the pure selection functions."""

import math
import random

import pytest
import torch

from pretrain.selection.dar import (
    DaRParams,
    DaRState,
    dar_transition,
    initial_state,
    keep_count,
    plan_subset_sizes,
    relative_cost,
    select_hardest,
    select_random,
)
from pretrain.selection.distributed import scatter_into_table
from pretrain.selection.samplers import DaRSampler

CIFAR_N = 50_000
IMAGENET_N = 1_281_167


def cost_percent(num_samples: int, **kw) -> float:
    params = DaRParams(**kw)
    return 100 * relative_cost(plan_subset_sizes(num_samples, params), num_samples)


def printed_algorithm_1_percent(num_samples, warmup, interval, keep, epochs, refresh=(), active=None) -> float:
    """Literal transcription of the papers' printed Algorithm 1: T_prev is NOT reset at a refresh."""
    t_start = t_prev = warmup
    n, total = num_samples, 0
    for tau in range(1, epochs + 1):
        total += n
        if tau > warmup and tau - t_prev == interval and (active is None or tau - t_start < active):
            t_prev = tau
            n = keep_count(n, keep)
        if tau in refresh:
            t_start = tau
            n = num_samples
    return 100 * total / (epochs * num_samples)


# DaP paper ("Revisiting Pre-training ..."), Table 2: CIFAR-10 ablations around the baseline
# W=40, I=10, p=0.9, alpha=inf, R=[150], E=300. Each row: (table cell, overrides, printed computation %).
CIFAR10 = dict(warmup=40, interval=10, keep=0.9, epochs=300, refresh=(150,))
TABLE_2 = [
    ("2 baseline", {}, 63),
    ("2a no warm-up", {"warmup": 0}, 53),
    ("2a W=20", {"warmup": 20}, 58),
    ("2a W=40", {"warmup": 40}, 63),
    ("2a W=60", {"warmup": 60}, 67),
    ("2a W=70", {"warmup": 70}, 69),
    ("2a W=90", {"warmup": 90}, 72),
    ("2b I=2", {"interval": 2}, 27),
    ("2b I=5", {"interval": 5}, 44),
    ("2b I=10", {"interval": 10}, 63),
    ("2b I=15", {"interval": 15}, 73),
    ("2b I=20", {"interval": 20}, 79),
    ("2b I=25", {"interval": 25}, 83),
    ("2c p=0.7", {"keep": 0.7}, 35),
    ("2c p=0.75", {"keep": 0.75}, 39),
    ("2c p=0.8", {"keep": 0.8}, 45),
    ("2c p=0.85", {"keep": 0.85}, 52),
    ("2c p=0.9", {"keep": 0.9}, 63),
    ("2c p=0.95", {"keep": 0.95}, 78),
    ("2d alpha=20", {"active": 20}, 92),
    ("2d alpha=60", {"active": 60}, 72),
    ("2d no active", {"active": None}, 63),
    ("2e no reusing", {"refresh": ()}, 45),
    ("2e reusing at 150", {"refresh": (150,)}, 63),
    ("2e reusing at 150/225", {"refresh": (150, 225)}, 73),
]
# DaP Table 3: CIFAR-100, baseline W=40, I=20, p=0.9, alpha=inf, R=[150], E=300.
CIFAR100 = dict(CIFAR10, interval=20)
TABLE_3 = [
    ("3 baseline", {}, 79),
    ("3a I=10", {"interval": 10}, 63),
    ("3a I=30", {"interval": 30}, 86),
    ("3b alpha=60", {"active": 60}, 87),
]


@pytest.mark.parametrize("cell, overrides, printed", TABLE_2, ids=[row[0] for row in TABLE_2])
def test_cost_reproduces_dap_table_2(cell, overrides, printed):
    assert round(cost_percent(CIFAR_N, **{**CIFAR10, **overrides})) == printed


@pytest.mark.parametrize("cell, overrides, printed", TABLE_3, ids=[row[0] for row in TABLE_3])
def test_cost_reproduces_dap_table_3(cell, overrides, printed):
    assert round(cost_percent(CIFAR_N, **{**CIFAR100, **overrides})) == printed


def test_table_3b_alpha_40_is_printed_truncated():
    # Table 3(b) alpha=40 (and the "92% computation" of Table 6): the rule gives 278/300 = 92.67%; the
    # paper prints 92, i.e. truncated where every other cell is rounded. Exact value asserted here.
    assert cost_percent(CIFAR_N, **CIFAR100, active=40) == pytest.approx(100 * 278 / 300)


IMAGENET = dict(warmup=10, interval=2, active=10, epochs=120, refresh=(30, 60, 90))  # DaP Sec. 4.3.1


def test_cost_imagenet_table_7_and_dar_presets():
    # DaP Table 7 column "86% computation" is p=0.95 (Sec. 4.3.2); the DaR paper's preset text says p=0.9
    # for its 86% run, which by the same rule costs 74%: we ship both presets, named by their cost.
    assert round(cost_percent(IMAGENET_N, keep=0.95, **IMAGENET)) == 86
    p90 = cost_percent(IMAGENET_N, keep=0.9, **IMAGENET)
    assert round(p90) == 74
    # Table 7's "75% computation" column (p=0.9): the rule gives 73.9%, the paper prints 75 (within 1.1).
    assert abs(p90 - 75) < 1.1


def test_printed_algorithm_without_reset_does_not_reproduce_the_tables():
    # For the CIFAR-10 baseline itself the reset makes no difference (the refresh epoch 150 is also a
    # drop epoch, and without alpha drops continue every I epochs): both give 63%.
    assert round(printed_algorithm_1_percent(CIFAR_N, **CIFAR10)) == 63
    assert printed_algorithm_1_percent(CIFAR_N, **CIFAR10) == pytest.approx(cost_percent(CIFAR_N, **CIFAR10))
    # Everywhere the refresh epoch is off the drop grid or an active window is set, the printed algorithm
    # misses the published figures by a point or more, while the reset rule hits them (tests above).
    misses = [
        (CIFAR10, {"interval": 15}, 73),  # gives 71.7
        (CIFAR10, {"interval": 20}, 79),  # 77.2
        (CIFAR10, {"active": 20}, 92),  # 96.7
        (CIFAR10, {"refresh": (150, 225)}, 73),  # 71.7
        (CIFAR100, {"active": 60}, 87),  # 94.9
        (dict(IMAGENET, keep=0.9), {}, 75),  # 95.6: dropping stops after the first refresh
        (dict(IMAGENET, keep=0.95), {}, 86),  # 97.7
    ]
    for base, overrides, printed in misses:
        n = IMAGENET_N if base.get("epochs") == 120 else CIFAR_N
        assert abs(printed_algorithm_1_percent(n, **{**base, **overrides}) - printed) >= 1.0, overrides
        assert abs(cost_percent(n, **{**base, **overrides}) - printed) < 1.1, overrides


def test_transition_walkthrough():
    params = DaRParams(warmup=2, interval=2, keep=0.5, epochs=12, refresh=(7, 10), active=4)
    state, events = initial_state(params), []
    assert state == DaRState(2, 2)
    for epoch in range(1, 13):
        state, drop, refresh = dar_transition(state, epoch, params)
        events.append((epoch, drop, refresh, state.t_start, state.t_prev))
    # drops at 4 (4-2<4) but not 6 (6-2=4 not < 4); refresh at 7 resets T_prev -> drop at 9; refresh
    # at 10 -> drop at 12.
    assert [e[0] for e in events if e[1]] == [4, 9, 12]
    assert [e[0] for e in events if e[2]] == [7, 10]
    assert events[6][3:] == (7, 7) and events[-1][3:] == (10, 12)
    assert plan_subset_sizes(8, params) == [8, 8, 8, 8, 4, 4, 4, 8, 8, 4, 8, 8]


def test_drop_and_refresh_at_the_same_epoch_refresh_wins():
    params = DaRParams(warmup=0, interval=3, keep=0.5, epochs=6, refresh=(3,))
    state, drop, refresh = dar_transition(initial_state(params), 3, params)
    assert drop and refresh and state == DaRState(3, 3)
    assert plan_subset_sizes(10, params) == [10, 10, 10, 10, 10, 10]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"keep": 0.0}, "keep fraction p"),
        ({"keep": 1.5}, "keep fraction p"),
        ({"keep": -0.1}, "keep fraction p"),
        ({"refresh": (150, 100)}, "strictly increasing"),
        ({"refresh": (100, 100)}, "strictly increasing"),
        ({"refresh": (301,)}, r"\[1, epochs=300\]"),
        ({"refresh": (0,)}, r"\[1, epochs=300\]"),
        ({"interval": 0}, "interval"),
        ({"warmup": -1}, "warmup"),
        ({"epochs": 0}, "epochs"),
        ({"active": 0}, "active"),
        ({"warmup": 1.5}, "warmup must be an integer"),
    ],
)
def test_params_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        DaRParams(**{**CIFAR10, **kw})


def test_params_accept_lists_and_p_equal_one():
    params = DaRParams(warmup=1, interval=1, keep=1.0, epochs=5, refresh=[2, 4])
    assert params.refresh == (2, 4)
    assert plan_subset_sizes(7, params) == [7] * 5


def test_keep_count_is_exact():
    # float error: 0.07 * 100 == 7.000000000000001 (ceil 8) and 0.57 * 100 == 56.99999999999999
    assert math.ceil(0.07 * 100) == 8 and keep_count(100, 0.07) == 7
    assert math.ceil(0.28 * 25) == 8 and keep_count(25, 0.28) == 7
    assert keep_count(100, 0.57) == 57
    assert keep_count(10, 0.71) == 8 and keep_count(3, 0.5) == 2 and keep_count(1, 0.01) == 1
    assert keep_count(0, 0.9) == 0


def reference_hardest(indices, losses, keep):
    """Brute force: sort (loss desc with NaN = +inf, index asc), take ceil(keep * n) by exact counting."""
    n = len(indices)
    k = next(k for k in range(n + 1) if k >= keep * n - 1e-9)
    key = sorted(zip(indices, losses, strict=True), key=lambda t: (-(math.inf if math.isnan(t[1]) else t[1]), t[0]))
    return sorted(i for i, _ in key[:k])


@pytest.mark.parametrize("seed", range(20))
def test_select_hardest_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    indices = rng.sample(range(1000), n)
    # few distinct values -> many ties; some NaN
    losses = [rng.choice([0.5, 1.0, 2.0, 3.0, float("nan"), rng.random()]) for _ in range(n)]
    keep = rng.choice([0.1, 0.5, 0.7, 0.9, 0.95, 1.0, rng.uniform(0.01, 1)])
    got = select_hardest(torch.tensor(indices), torch.tensor(losses), keep)
    assert got.dtype == torch.int64
    assert got.tolist() == reference_hardest(indices, losses, keep)
    assert got.numel() == keep_count(n, keep)
    # independent of the order the pairs come in
    perm = rng.sample(range(n), n)
    again = select_hardest(torch.tensor(indices)[perm], torch.tensor(losses)[perm], keep)
    assert torch.equal(again, got)


def test_select_hardest_ties_and_nan_rules():
    idx = torch.tensor([9, 3, 7, 1, 5])
    # NaN (index 7) counts as hardest; among the equal 2.0s the lower indices (1, 3) win over 9
    got = select_hardest(idx, torch.tensor([2.0, 2.0, float("nan"), 2.0, 0.1]), 0.6)
    assert got.tolist() == [1, 3, 7]
    with pytest.raises(ValueError, match="unique"):
        select_hardest(torch.tensor([1, 1]), torch.tensor([0.0, 1.0]), 0.5)
    with pytest.raises(ValueError, match="shape"):
        select_hardest(torch.tensor([1, 2]), torch.tensor([0.0]), 0.5)


def tied_losses(gen, n):
    """Few distinct values (incl. -0.0 and 0.0, +-inf) plus NaN: many ties at any threshold."""
    values = torch.tensor([float("nan"), -math.inf, -1.0, -0.0, 0.0, 0.5, 2.0, math.inf])
    losses = values[torch.randint(len(values), (n,), generator=gen)]
    fresh = torch.rand(n, generator=gen) < 0.2  # some distinct values too
    return torch.where(fresh, torch.rand(n, generator=gen), losses)


@pytest.mark.parametrize("keep", [0.001, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_select_hardest_sorted_fast_path_equals_general_path(keep, seed):
    gen = torch.Generator().manual_seed(seed)
    for n in (1, 2, 7, 3000):
        # a strictly increasing subset with gaps, as the sampler passes it (-> the kthvalue fast path)
        idx = torch.sort(torch.randperm(3 * n, generator=gen)[:n]).values
        losses = tied_losses(gen, n).to(torch.float32)
        fast = select_hardest(idx, losses, keep)
        # a shuffled copy is not increasing -> the unique check + full sort path
        perm = torch.randperm(n, generator=gen)
        if n > 1:
            perm = perm if not torch.equal(perm, torch.arange(n)) else perm.flip(0)
        general = select_hardest(idx[perm], losses[perm], keep)
        assert fast.dtype == general.dtype == torch.int64
        assert torch.equal(fast, general), (n, keep)
        assert fast.numel() == keep_count(n, keep)
        if n <= 7:
            assert fast.tolist() == reference_hardest(idx.tolist(), losses.tolist(), keep)
    assert select_hardest(torch.empty(0, dtype=torch.int64), torch.empty(0), keep).numel() == 0


def reference_scatter(table, indices, losses):
    out = table.clone()
    seen = set()
    for i, v in zip(indices.tolist(), losses.tolist(), strict=True):
        if i not in seen and math.isnan(out[i].item()):
            out[i] = v
        seen.add(i)
    return out


@pytest.mark.parametrize("duplicates", [False, True])
def test_scatter_into_table_fast_path_equals_general_path(duplicates):
    gen = torch.Generator().manual_seed(7)
    n = 500
    table = torch.full((n,), float("nan"))
    prefilled = torch.rand(n, generator=gen) < 0.3
    table[prefilled] = -5.0  # values already in the table are never overwritten
    idx = torch.randperm(n, generator=gen)[:400]
    if duplicates:
        idx = torch.cat([idx, idx[torch.randint(400, (100,), generator=gen)]])
    losses = tied_losses(gen, idx.numel())
    want = reference_scatter(table, idx, losses)
    got = scatter_into_table(table.clone(), idx, losses)
    assert torch.equal(torch.isnan(got), torch.isnan(want)) and torch.equal(got.nan_to_num(9.0), want.nan_to_num(9.0))
    if not duplicates:
        # a trailing repeat of a record forces the unique + scatter_reduce path; its first occurrence wins
        forced = scatter_into_table(table.clone(), torch.cat([idx, idx[:1]]), torch.cat([losses, losses[:1] + 1]))
        assert torch.equal(torch.isnan(forced), torch.isnan(got))
        assert torch.equal(forced.nan_to_num(9.0), got.nan_to_num(9.0))


def test_select_random_is_a_seeded_subset():
    idx = torch.arange(100, 200)
    a = select_random(idx, 0.3, torch.Generator().manual_seed(1))
    b = select_random(idx.flip(0), 0.3, torch.Generator().manual_seed(1))
    c = select_random(idx, 0.3, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.numel() == 30 and torch.equal(a, torch.sort(a).values) and set(a.tolist()) <= set(idx.tolist())


def run_epoch(sampler, loss_of):
    order = list(sampler)
    for start in range(0, len(order), 7):
        batch = torch.tensor(order[start : start + 7])
        sampler.record(batch, loss_of(batch))
    return order


def test_sampler_drops_hardest_of_current_subset_and_refresh_restores_all():
    n = 53
    params = DaRParams(warmup=1, interval=1, keep=0.5, epochs=4, refresh=(3,))
    sampler = DaRSampler(n, params, seed=3)
    subsets = []
    for epoch in range(1, 5):
        sampler.set_epoch(epoch)
        # losses change with the epoch so the second drop is not implied by the first
        order = run_epoch(sampler, lambda i, e=epoch: torch.sin(i.double() * (1 + e)).float())
        assert sorted(order) == subsets[-1] if subsets else list(range(n))
        before = sampler.subset.clone()
        out = sampler.end_epoch(epoch)
        subsets.append(sampler.subset.tolist())
        assert out["kept"].sum() == sampler.subset_size and out["losses"].shape == (n,)
        if epoch == 2:  # drop: exactly the top ceil(0.5 * 53) = 27 of the current subset by loss
            losses = torch.sin(before.double() * 3).float()
            assert out["drop"] and sampler.subset.tolist() == reference_hardest(before.tolist(), losses.tolist(), 0.5)
            assert sampler.subset_size == 27
            # NaN outside the subset (not trained this epoch), finite inside
            assert torch.isnan(torch.from_numpy(out["losses"])).sum() == 0
        if epoch == 3:  # drop at 3 (from 27 -> 14 over the current subset only), then refresh wins
            assert out["drop"] and out["refresh"] and subsets[-1] == list(range(n))
            assert torch.isnan(torch.from_numpy(out["losses"])).sum() == n - 27
    # after the refresh T_prev = 3, so epoch 4 drops again (4 - 3 == I)
    assert [len(s) for s in subsets] == [53, 27, 53, 27]
