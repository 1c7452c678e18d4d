"""InfoBatch: the well-learned set, the kept subset and its weights, the delta boundary, the dry-run bound."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import gloo_ranks, harness
from scipy.stats import chisquare

from pretrain.selection.infobatch import (
    InfoBatchParams,
    cost_bound,
    infobatch_select,
    kept_well_learned_count,
    prunes,
    pruning_epochs,
    well_learned,
)

NAN = math.nan


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_well_learned_is_strictly_below_the_mean_of_the_scored():
    # scored: 1, 3, 2, 2 -> mean 2; the two samples at the mean are not well-learned; NaN never is
    mask = well_learned(torch.tensor([1.0, 3.0, 2.0, 2.0, NAN]))
    assert mask.tolist() == [True, False, False, False, False]
    # the mean is over the scored only: (1 + 3 + 1.8) / 3 = 1.93 keeps 1.8 in L; counting NaN as 0
    # would give 1.45 (1.8 out, the NaN in)
    assert well_learned(torch.tensor([1.0, 3.0, 1.8, NAN])).tolist() == [True, False, True, False]
    assert well_learned(torch.tensor([NAN, NAN])).tolist() == [False, False]
    assert well_learned(torch.tensor([0.5, 0.5, 0.5])).tolist() == [False] * 3  # all equal: nothing below


def test_select_keeps_exactly_floor_half_of_the_well_learned_with_weight_two():
    # scored mean = (0.1 + 0.2 + 0.3 + 0.4 + 5 + 6) / 6 = 2 -> L = {0, 1, 2, 3}; 6 and 7 never scored
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 5.0, 6.0, NAN, NAN])
    for seed in range(20):
        sel = infobatch_select(scores, 0.5, gen(seed))
        # the documented draw: one randperm of |L| = 4 over L in index order, its first floor(0.5 * 4) = 2
        survivors = sorted(torch.randperm(4, generator=gen(seed))[:2].tolist())
        assert sel.kept.tolist() == survivors + [4, 5, 6, 7]
        assert sel.kept.dtype == torch.int64 and sel.num_well_learned == 4
        assert sel.weights.tolist() == [2.0, 2.0, 1.0, 1.0, 1.0, 1.0]
        table = sel.weight_table(8)
        assert table.tolist() == [2.0 if i in survivors else 1.0 for i in range(8)]


def test_survivors_are_uniform_over_the_well_learned():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 5.0, 6.0])
    g, pairs = gen(0), {}
    for _ in range(3000):
        kept = infobatch_select(scores, 0.5, g).kept.tolist()
        pair = tuple(i for i in kept if i < 4)
        pairs[pair] = pairs.get(pair, 0) + 1
    assert len(pairs) == 6  # all C(4, 2) pairs occur
    assert chisquare(list(pairs.values())).pvalue > 1e-3
    # and the test can fail: a draw that always prefers the lowest scores would be rejected
    biased = [1500, 300, 300, 300, 300, 300]
    assert chisquare(biased).pvalue < 1e-6


def test_unscored_table_prunes_nothing_and_draws_nothing():
    g = gen(3)
    before = g.get_state()
    sel = infobatch_select(torch.full((5,), NAN), 0.5, g)
    assert sel.kept.tolist() == [0, 1, 2, 3, 4] and sel.weights.tolist() == [1.0] * 5
    assert torch.equal(g.get_state(), before)


def test_counts_are_exact_decimals():
    # ten samples at 0 and one at 100: mean 100/11, |L| = 10; r = 0.9 keeps floor(0.1 * 10) = 1 with weight 10
    # (in floating point (1 - 0.9) * 10 = 0.9999999999999998, whose floor is 0)
    scores = torch.tensor([0.0] * 10 + [100.0])
    sel = infobatch_select(scores, 0.9, gen(0))
    assert sel.kept.numel() == 2 and sel.kept[-1].item() == 10
    assert sel.weights.tolist() == [10.0, 1.0]
    assert kept_well_learned_count(10, 0.7) == 3 and kept_well_learned_count(7, 0.5) == 3
    assert InfoBatchParams(prune_ratio=0.5).weight == 2.0 and InfoBatchParams(prune_ratio=0.0).weight == 1.0
    # r = 0 keeps everything, weight 1
    full = infobatch_select(torch.tensor([0.1, 0.2, 5.0]), 0.0, gen(0))
    assert full.kept.tolist() == [0, 1, 2] and full.weights.tolist() == [1.0, 1.0, 1.0]


def test_delta_boundary_prunes_the_first_ceil_delta_e_epochs():
    assert pruning_epochs(200, 0.875) == 175  # the paper's CIFAR setting: 176-200 train the full data
    assert [e for e in range(1, 9) if prunes(e, 8, 0.875)] == [1, 2, 3, 4, 5, 6, 7]
    assert pruning_epochs(6, 0.875) == 6  # ceil(5.25)
    # 0.7 * 10 is 7.000000000000001 in floating point: its ceiling would be 8
    assert pruning_epochs(10, 0.7) == 7 and prunes(7, 10, 0.7) and not prunes(8, 10, 0.7)
    assert pruning_epochs(5, 1.0) == 5
    with pytest.raises(ValueError, match="epoch must be in"):
        prunes(0, 5, 0.5)


def test_cost_bound_is_reached_by_the_worst_case_losses():
    # N = 10, E = 4, r = 0.5, delta = 0.5: epochs 1-2 prune; epoch 1 has nothing scored
    # least trained in a pruning epoch = 10 - ceil(0.5 * 9) = 5
    sizes, cost = cost_bound(10, 4, InfoBatchParams(prune_ratio=0.5, delta=0.5))
    assert sizes == [10, 5, 10, 10] and cost == pytest.approx(35 / 40)
    # nine equal low scores and one high: |L| = 9, floor(0.5 * 9) = 4 stay, 5 pruned: the bound is tight
    worst = infobatch_select(torch.tensor([0.0] * 9 + [1.0]), 0.5, gen(0))
    assert worst.kept.numel() == 5
    # and no table trains fewer
    for seed in range(50):
        scores = torch.rand(10, generator=gen(seed))
        assert infobatch_select(scores, 0.5, gen(seed)).kept.numel() >= 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(prune_ratio=1.0), r"method.prune_ratio \(InfoBatch's r\) must be in \[0, 1\), got 1.0"),
    (dict(prune_ratio=-0.1), "prune_ratio"),
    (dict(prune_ratio=True), "prune_ratio"),
    (dict(delta=0.0), r"method.delta .* must be in \(0, 1\], got 0.0"),
    (dict(delta=1.5), "delta"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InfoBatchParams(**kwargs)


# -- the adapter (pretrain/methods/infobatch.py), one process and two real gloo ranks --------------------
N, EPOCHS, BATCH, SEED = 601, 4, 32, 3  # N odd: the shards pad; indices > 256 are not exact in bf16
CFG = dict(type="infobatch", prune_ratio=0.5, delta=0.75)  # epochs 1-3 prune (epoch 1 vacuously), 4 full


def loss_of(indices: torch.Tensor, epoch: int) -> torch.Tensor:
    """A hand-made training loss per (sample, epoch), in bf16 like an autocast loss."""
    return (1.5 + torch.sin(indices.double() * 0.7 + epoch)).to(torch.bfloat16)


def simulate(world: int = 1, rank: int = 0) -> list[dict]:
    """Drive the method as the trainer does, recording ``loss_of``; a padding repeat records +100."""
    from pretrain.methods import build_method
    from pretrain.methods.base import Batch, RunInfo, StepInfo, StepRecord

    run = RunInfo(num_samples=N, epochs=EPOCHS, batch_size=BATCH, img_size=32, world_size=world, rank=rank, seed=SEED)
    method = build_method(CFG, run)
    method.build_feed(None, 0)
    out = []
    for epoch in range(1, EPOCHS + 1):
        method.begin_epoch(epoch)
        method.sampler.set_epoch(epoch)
        order, weights = torch.tensor(list(method.sampler)), []
        for s, lo in enumerate(range(0, order.numel(), BATCH)):
            idx = order[lo:lo + BATCH]
            step = StepInfo(epoch, s, math.ceil(order.numel() / BATCH), 0)
            batch = method.select(Batch(torch.zeros(idx.numel(), 1), torch.zeros(idx.numel()), idx), step)
            weights.append(torch.ones(idx.numel()) if batch.weights is None else batch.weights.cpu())
            padded = rank + world * (lo + torch.arange(idx.numel())) >= method.sampler.subset_size
            losses = loss_of(idx, epoch) + 100 * padded
            method.record(StepRecord(idx, losses, torch.zeros(idx.numel(), 2), torch.zeros(idx.numel()), step))
        trained = {"subset": method.sampler.subset.clone(), "order": order, "weights": torch.cat(weights)}
        result = method.end_epoch(epoch)
        out.append({**trained, "log": result.log, "scores": method.scores.clone()})
    return out


def expected_epochs() -> list[dict]:
    """The same four epochs rebuilt from the rule alone: the table is each sample's last loss."""
    from pretrain.selection.samplers import derive_seed

    g = gen(derive_seed(SEED, "infobatch"))
    subset, table, weights, out = torch.arange(N), torch.full((N,), NAN), torch.ones(N), []
    for epoch in range(1, EPOCHS + 1):
        out.append({"subset": subset, "weights": weights})
        table[subset] = loss_of(subset, epoch).float()
        if epoch < EPOCHS and prunes(epoch + 1, EPOCHS, 0.75):
            sel = infobatch_select(table, 0.5, g)
            subset, weights = sel.kept, sel.weight_table(N)
        else:
            subset, weights = torch.arange(N), torch.ones(N)
        out[-1]["table"] = table.clone()
    return out


def check_against_rule(got: list[dict]) -> None:
    want = expected_epochs()
    for epoch, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        assert torch.equal(g["subset"], w["subset"]), epoch
        # every trained sample got its own weight, in loader order (padding repeats included)
        assert torch.equal(g["weights"], w["weights"][g["order"]]), epoch
        assert torch.equal(torch.isnan(g["scores"]), torch.isnan(w["table"])), epoch
        assert torch.equal(g["scores"].nan_to_num(-1), w["table"].nan_to_num(-1)), epoch
    sizes = [g["subset"].numel() for g in got]
    assert sizes[0] == N and sizes[3] == N and sizes[1] < N and sizes[2] < N  # epochs 2-3 pruned, 4 full
    assert set(got[1]["weights"].tolist()) == {1.0, 2.0} and set(got[3]["weights"].tolist()) == {1.0}


def test_adapter_follows_the_rule_with_persistent_scores():
    check_against_rule(simulate())


@pytest.mark.slow
def test_two_gloo_ranks_with_bf16_losses_agree_with_one_process(tmp_path):
    assert torch.tensor([601.0]).bfloat16().long().item() != 601  # an index cast to bf16 would be wrong
    ranks = gloo_ranks.run_ranks(__file__, tmp_path)
    one = simulate()
    for r in range(2):
        got = ranks[r]
        for epoch, (a, b) in enumerate(zip(got, one, strict=True), start=1):
            assert torch.equal(a["subset"], b["subset"]), (r, epoch)
            assert torch.equal(a["scores"].nan_to_num(-1), b["scores"].nan_to_num(-1)), (r, epoch)
            assert a["log"] == b["log"], (r, epoch)
    check_against_rule(one)


def rank_job(world: int, rank: int, out) -> object:
    return simulate(world, rank)


if __name__ == "__main__":
    gloo_ranks.serve(rank_job)


def test_the_trainer_trains_on_the_weighted_batch_mean(tmp_path):
    """One real ``Trainer.run_step`` with InfoBatch weights in force: the gradient it steps with is that of
    ``sum(w_i l_i) / B`` computed by hand on a copy of the model (and not that of the plain mean)."""
    import copy

    import torch.nn.functional as F
    from mmengine import Config

    from pretrain.config import build_config
    from pretrain.env import Env
    from pretrain.trainer import Trainer

    cfg = build_config(Config.fromfile(str(Path(__file__).resolve().parents[2] / "configs/pretrain/tiny_digits_infobatch.py")))
    trainer = Trainer(cfg, Env(), tmp_path)
    method = trainer.method
    method.weights = torch.where(torch.arange(method.run.num_samples) % 3 == 0, 2.0, 1.0)  # as a pruned epoch has
    method.weighted = True
    images, targets, indices = next(iter(trainer.feed.begin(1, 0)))
    trainer.steps = trainer.feed.steps_in_epoch()  # as run_epoch sets it
    batch = trainer.to_device(images, targets, indices)
    w = method.weights[indices]
    assert set(w.tolist()) == {1.0, 2.0}
    trainer.model.train()
    ref = copy.deepcopy(trainer.model)
    by_hand = (w * F.cross_entropy(ref(batch.images), batch.targets, reduction="none")).sum() / len(indices)
    grads = torch.autograd.grad(by_hand, list(ref.parameters()))
    plain = torch.autograd.grad(F.cross_entropy(ref(batch.images), batch.targets), list(ref.parameters()))
    trainer.run_step(batch)
    got = [p.grad for p in trainer.model.parameters()]
    assert all(torch.allclose(g, h, rtol=1e-4, atol=1e-6) for g, h in zip(got, grads, strict=True))
    assert not all(torch.allclose(g, h, rtol=1e-3, atol=1e-5) for g, h in zip(got, plain, strict=True))

# -- a real kill -9 inside an epoch, then --resume ---------------------------------------------------------


# Extended: tests/test_reliability/test_interrupt.py kills and resumes this method's tiny config in CI on
# 1 and 2 ranks; this one aims the kill at the epoch where the rule is active.
@pytest.mark.extended
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    """4 epochs, all pruning (ceil(0.8 x 4)); killed inside epoch 3, when the subset is pruned and weighted."""
    options = ["schedule.epochs=4", "schedule.milestones=[3]"]
    final = harness.check_kill_and_resume("tiny_digits_infobatch.py", tmp_path, options, kill_in=3, epochs=4)
    log = harness.log_lines(tmp_path / "uninterrupted")
    assert [x["kept_fraction"] < 1 for x in log[:4]] == [False, True, True, True]  # it did prune
    assert not torch.isnan(final["method"]["scores"]).any()  # every sample was scored at some point
    assert not final["method"]["weighted"]  # after the last epoch: nothing left to weight


@pytest.mark.parametrize("option, message", [
    ("method.prune_ratio=1.0", "method.prune_ratio (InfoBatch's r) must be in [0, 1), got 1.0"),
    ("method.delta=0", "method.delta (InfoBatch's share of pruning epochs) must be in (0, 1], got 0"),
])
def test_bad_params_are_one_error_line_and_exit_2_before_training(option, message, tmp_path):
    assert harness.rejected("tiny_digits_infobatch.py", tmp_path / "run", [option]) == [f"error: {message}"]
