"""RS2 without replacement: the exact slices of each cycle's permutation, every sample once per cycle,
boundary epochs, the adapter, two gloo ranks against one process, bad parameters.

Kill -9 / preemption and resume of ``tiny_digits_rs2.py``: ``tests/test_reliability/test_interrupt.py``
(every tiny config is picked up by its glob)."""
from __future__ import annotations

import pytest
import torch
from helpers import gloo_ranks, harness

from pretrain.errors import ConfigError
from pretrain.selection.rs2 import cycle_permutation, cycle_positions, rs2_subset, subset_sizes
from pretrain.selection.samplers import derive_seed


def perm(n: int, cycle: int, seed: int) -> list[int]:
    """Cycle ``cycle``'s permutation, drawn here as the documented rule says (not through the module)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, "rs2", cycle))).tolist()


def test_subsets_are_consecutive_slices_of_each_cycles_permutation():
    n, seed, sizes = 10, 5, [3] * 8
    p0, p1 = perm(n, 0, seed), perm(n, 1, seed)
    # 10 = 3 + 3 + 3 + 1: epoch 4 takes the last sample of cycle 0 and fills up with its first two; epoch 5
    # starts cycle 1
    want = [p0[0:3], p0[3:6], p0[6:9], p0[9:] + p0[:2], p1[0:3], p1[3:6], p1[6:9], p1[9:] + p1[:2]]
    got = [rs2_subset(n, sizes, e, seed).tolist() for e in range(1, 9)]
    assert got == [sorted(w) for w in want]
    assert p0 != p1  # a fresh permutation per cycle
    assert cycle_permutation(n, 1, seed).tolist() == p1


def test_cycle_positions_with_varying_sizes():
    # N = 10: sizes 4, 4 (pos 8), 5 wraps (8 + 5 > 10: ends cycle 0), 10 (a whole cycle), 2, 8 (exactly ends), 1
    assert cycle_positions(10, [4, 4, 5, 10, 2, 8, 1]) == [(0, 0), (0, 4), (0, 8), (1, 0), (2, 0), (2, 2), (3, 0)]
    with pytest.raises(ValueError, match=r"size must be in \[1, 10\]"):
        cycle_positions(10, [4, 11])


@pytest.mark.parametrize("n, fraction", [(12, 0.25), (1347, 0.5), (1000, 0.1), (101, 0.3), (7, 1.0)])
def test_without_replacement_over_every_cycle(n, fraction):
    epochs = 3 * -(-n // subset_sizes(n, [fraction])[0])  # three whole cycles
    sizes = subset_sizes(n, [fraction] * epochs)
    k, per_cycle = sizes[0], -(-n // sizes[0])
    subsets = [rs2_subset(n, sizes, e, 3) for e in range(1, epochs + 1)]
    assert all(s.numel() == k and s.unique().numel() == k for s in subsets)
    for c in range(3):
        cycle = subsets[c * per_cycle:(c + 1) * per_cycle]
        counts = torch.bincount(torch.cat(cycle), minlength=n)
        # every sample in the cycle; only the first epoch's samples may come twice (the last epoch's fill)
        assert int(counts.min()) == 1 and int(counts.max()) <= 2
        twice = torch.nonzero(counts == 2).flatten()
        assert twice.numel() == per_cycle * k - n
        assert bool(torch.isin(twice, cycle[0]).all())
        body = torch.cat(cycle[:-1] or [cycle[0][:0]])  # before the last epoch no sample repeats
        assert body.unique().numel() == body.numel()
    if k < n:  # each cycle its own permutation: the next cycle's subsets differ
        assert any(not torch.equal(a, b) for a, b in zip(subsets[:per_cycle], subsets[per_cycle:2 * per_cycle],
                                                         strict=True))


def test_sizes_and_boundary_epochs():
    # ceil(f N) in exact decimals: 0.07 of 100 is 7 (floating point: 7.000000000000001 -> 8)
    assert subset_sizes(100, [0.07, 1.0, 0.5, 0.333]) == [7, 100, 50, 34]
    sizes = [4, 4, 4]
    assert rs2_subset(10, sizes, 3, 0).numel() == 4  # 8 + 4 > 10: tail of 2 and the first 2
    with pytest.raises(ValueError, match=r"epoch must be in \[1, 3\]"):
        rs2_subset(10, sizes, 0, 0)
    with pytest.raises(ValueError, match=r"epoch must be in \[1, 3\]"):
        rs2_subset(10, sizes, 4, 0)
    with pytest.raises(ValueError, match=r"fractions must be in \(0, 1\]"):
        subset_sizes(10, [0.5, 0.0])
    # the whole data every epoch is plain reshuffled training: each epoch its own cycle
    assert all(rs2_subset(5, [5] * 3, e, 0).tolist() == list(range(5)) for e in (1, 2, 3))


# -- the adapter (pretrain/methods/rs2.py), one process and two real gloo ranks ---------------------------
N, EPOCHS, SEED = 601, 5, 11


def method(cfg: dict, n: int = N, epochs: int = EPOCHS, world: int = 1, rank: int = 0):
    from pretrain.methods import build_method
    from pretrain.methods.base import RunInfo

    m = build_method({"type": "rs2", **cfg}, RunInfo(num_samples=n, epochs=epochs, batch_size=16, world_size=world,
                                                     rank=rank, seed=SEED))
    m.build_feed(None, 0)
    return m


def simulate(world: int = 1, rank: int = 0) -> list[dict]:
    m, out = method({"fractions": [0.4, 0.4, 0.3, 1.0, 0.25]}, world=world, rank=rank), []
    for epoch in range(1, EPOCHS + 1):
        m.begin_epoch(epoch)
        m.sampler.set_epoch(epoch)
        out.append({"subset": m.sampler.subset.clone(), "shard": list(m.sampler)})
        m.end_epoch(epoch)
    return out


def test_adapter_plan_and_epochs_follow_the_rule():
    m = method({"fractions": [0.4, 0.4, 0.3, 1.0, 0.25]})
    sizes = [241, 241, 181, 601, 151]  # ceil(f * 601)
    plan = m.plan()
    assert plan.sizes == tuple(sizes) and plan.bound is None
    assert plan.flops_cost == pytest.approx(sum(sizes) / (EPOCHS * N))
    got = simulate()
    assert [g["subset"].tolist() for g in got] == [rs2_subset(N, sizes, e, SEED).tolist() for e in range(1, 6)]
    assert torch.cat([g["subset"] for g in got[:2]]).unique().numel() == 482  # epochs 1-2: no repeat
    constant = method({"budget": 0.5}, n=10, epochs=4).plan()
    assert constant.sizes == (5,) * 4 and "exactly once per 2 epochs" in " ".join(constant.notes)


def test_two_gloo_ranks_agree_with_one_process(tmp_path):
    ranks, one = gloo_ranks.run_ranks(__file__, tmp_path), simulate()
    for epoch, want in enumerate(one, start=1):
        for r in range(2):
            assert torch.equal(ranks[r][epoch - 1]["subset"], want["subset"]), (r, epoch)
        shards = ranks[0][epoch - 1]["shard"] + ranks[1][epoch - 1]["shard"]
        # the two shards are the subset, padded to an even length by repeating its head
        assert sorted(set(shards)) == want["subset"].tolist() and len(shards) == 2 * -(-len(want["subset"]) // 2)


def rank_job(world: int, rank: int, out) -> object:
    return simulate(world, rank)


if __name__ == "__main__":
    gloo_ranks.serve(rank_job)


@pytest.mark.parametrize("cfg, message", [
    ({}, "exactly one of method.budget"),
    ({"budget": 0.5, "fractions": [1.0] * EPOCHS}, "exactly one"),
    ({"budget": 1.5}, r"budget \(RS2\) must be a fraction in \(0, 1\], got 1.5"),
    ({"fractions": [0.5, 0.0, 0.5, 0.5, 0.5]}, "fractions .* must be fractions"),
    ({"fractions": [0.5, 0.5]}, r"one fraction per epoch \(5\), got 2"),
    ({"budgt": 0.5}, "did you mean budget"),
])
def test_bad_params(cfg, message):
    with pytest.raises(ConfigError, match=message):
        method(cfg)


def test_bad_params_are_one_error_line_and_exit_2_before_training(tmp_path):
    lines = harness.rejected("tiny_digits_rs2.py", tmp_path / "run", ["method.budget=0"])
    assert lines == ["error: method.budget (RS2) must be a fraction in (0, 1], got 0"]
