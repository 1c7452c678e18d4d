"""IES (instance-dependent early stopping): the mastery criterion on hand-made loss histories (against a
literal per-sample re-statement of the official loop), NaN/unseen samples, ties at the threshold and the
cap, boundary epochs, the adapter's forward pass and comeback, two gloo ranks against one process, bad
parameters.

Kill -9 / preemption and resume of ``tiny_digits_ies.py`` on 1 and 2 ranks:
``tests/test_reliability/test_interrupt.py`` (its glob and ``has_cross_rank_state``); the kill inside an
epoch with excluded samples below runs under ``-m extended``."""
from __future__ import annotations

import math

import pytest
import torch
from helpers import gloo_ranks, harness

from pretrain.errors import ConfigError
from pretrain.selection.ies import IESParams, criterion, excluded_set, flops_lower_bound, push_losses

NAN = math.nan


def history_of(rows: list[list[float]], params: IESParams) -> torch.Tensor:
    """Per-sample loss lists (oldest first) pushed epoch by epoch into an all-NaN history."""
    h = torch.full((len(rows), params.history_length), NAN)
    for epoch in range(max(len(r) for r in rows)):
        col = [r[epoch - (max(len(x) for x in rows) - len(r))] if epoch >= max(len(x) for x in rows) - len(r) else NAN
               for r in rows]
        push_losses(h, torch.tensor(col))
    return h


def official_mastered(losses: list[float], m: int, k: int, threshold: float) -> bool:
    """The official loop, restated per sample: second differences of the loss list (one per epoch once there
    are 3 losses), the last m + k kept; once there are m + k, the running-sum moving averages of |d| over m,
    and the sum of the last k of them against the threshold."""
    derivatives = []
    for t in range(len(losses)):
        seen = losses[:t + 1]
        if len(seen) >= 3:
            derivatives = (derivatives + [seen[-1] - 2 * seen[-2] + seen[-3]])[-(m + k):]
    if len(derivatives) < m + k:
        return False
    a = [abs(x) for x in derivatives]
    window, averages = sum(a[:m]), []
    averages.append(window / m)
    for i in range(m, len(a)):
        window += a[i] - a[i - m]
        averages.append(window / m)
    return sum(abs(x) for x in averages[-k:]) < threshold


def test_criterion_by_hand():
    p = IESParams(threshold=0.5, moving_average=2, window=1)  # 5 losses: 3 differences
    h = history_of([[4.0, 2.0, 1.0, 0.5, 0.25]], p)
    # d = 1 - 4 + 4 = 1, 0.5 - 2 + 2 = 0.5, 0.25 - 1 + 1 = 0.25; averages over 2: 0.75, 0.375; sum of the last 1
    assert criterion(h, p).tolist() == [0.375]
    assert excluded_set(h, p).tolist() == [0]
    # k = 2: 6 losses, 4 differences (2, 1, 0.5, 0.25): averages 1.5, 0.75, 0.375; the last two sum 1.125
    p2 = IESParams(threshold=1.125, moving_average=2, window=2)
    h2 = history_of([[8.0, 4.0, 2.0, 1.0, 0.5, 0.25]], p2)
    assert criterion(h2, p2).item() == 1.125
    assert excluded_set(h2, p2).tolist() == []  # not below 1.125


def test_oldest_difference_enters_no_average_as_in_the_official_code():
    p = IESParams(threshold=1.0, moving_average=2, window=1)
    a = history_of([[4.0, 2.0, 1.0, 0.5, 0.25]], p)
    b = history_of([[100.0, 2.0, 1.0, 0.5, 0.25]], p)  # only d_0 changes
    assert criterion(a, p).item() == criterion(b, p).item()
    assert official_mastered([100.0, 2.0, 1.0, 0.5, 0.25], 2, 1, 1.0) and official_mastered([4.0, 2.0, 1.0, 0.5, 0.25], 2, 1, 1.0)


@pytest.mark.parametrize("m, k", [(3, 1), (1, 1), (2, 3), (4, 2)])
def test_agrees_with_the_official_loop_on_random_histories(m, k):
    g = torch.Generator().manual_seed(m * 10 + k)
    shape = IESParams(moving_average=m, window=k)
    n, epochs = 400, shape.history_length + 3
    # losses decaying with noise of varied size: some samples settle, some do not
    scale = torch.rand(n, generator=g) ** 4 * 0.2
    rows = [[float(2.0 * 0.7 ** t + scale[i] * torch.randn(1, generator=g)) for t in range(epochs)] for i in range(n)]
    # a threshold halfway between the two middle criteria: half the samples are mastered, none near the edge
    middle = torch.sort(criterion(history_of(rows, shape), shape)).values[n // 2 - 1:n // 2 + 1]
    p = IESParams(threshold=float(middle.mean()), moving_average=m, window=k)
    got = set(excluded_set(history_of(rows, p), p).tolist())
    want = {i for i, r in enumerate(rows) if official_mastered(r, m, k, p.threshold)}
    assert got == want and len(want) == n // 2


def test_unseen_nan_inf_and_boundary_epochs():
    p = IESParams(threshold=10.0, moving_average=1, window=1)  # 4 losses needed
    rows = [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, NAN, 1.0, 1.0], [1.0, 1.0, math.inf, 1.0], [2.0, 1.0, 1.0, 1.0]]
    h = history_of(rows, p)
    c = criterion(h, p)
    # row 1 has 3 losses (one epoch short), rows 2-3 a NaN / inf: no criterion, they keep training
    assert torch.isnan(c[1:4]).all() and c[0].item() == 0.0 and c[4].item() == 0.0  # d_0 of row 4 is not read
    assert excluded_set(h, p).tolist() == [0, 4]
    # the first judgement needs exactly m + k + 2 losses: 3 pushes -> nobody, the 4th -> the flat ones
    flat = torch.full((3, p.history_length), NAN)
    for epoch in range(1, 5):
        push_losses(flat, torch.ones(3))
        assert excluded_set(flat, p).numel() == (3 if epoch == 4 else 0), epoch


def test_ties_at_the_threshold_and_the_cap():
    p = IESParams(threshold=0.25, moving_average=1, window=1)
    # last difference 0.25 exactly (strict <: stays), 0.125 (leaves), 0 (leaves)
    h = history_of([[0.0, 0.0, 0.0, 0.25], [0.0, 0.0, 0.0, 0.125], [1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]], p)
    assert excluded_set(h, p).tolist() == [1, 2, 3]
    # at most N - min_train leave: the largest criteria train again, equal ones by the higher index
    assert excluded_set(h, p, min_train=2).tolist() == [2, 3]  # 2 and 3 tie at 0 < 1's 0.125
    assert excluded_set(h, p, min_train=3).tolist() == [2]
    assert excluded_set(h, IESParams(threshold=0.0, moving_average=1, window=1)).tolist() == []  # 0: baseline


def test_flops_lower_bound():
    p = IESParams(threshold=0.1, moving_average=1, window=1)
    # E = 6, N = 10, min 2: epochs 1-4 train 10; epochs 5, 6 train 2; 8 forwarded after epoch 5 only
    assert flops_lower_bound(10, 6, p, 2) == pytest.approx((40 + 4 + 8 / 3) / 60)
    assert flops_lower_bound(10, 3, p, 2) == 1.0  # too short to judge anyone
    assert flops_lower_bound(10, 6, IESParams(threshold=0.0), 2) == 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(threshold=-1e-3), r"method.threshold \(IES's mastery threshold\) must be a number >= 0, got -0.001"),
    (dict(threshold=math.nan), "threshold"),
    (dict(moving_average=0), r"method.moving_average .* must be an integer >= 1, got 0"),
    (dict(window=1.5), r"method.window .* must be an integer >= 1, got 1.5"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IESParams(**kwargs)


# -- the adapter (pretrain/methods/ies.py), one process and two real gloo ranks ----------------------------
N, EPOCHS, BATCH, SEED = 601, 7, 32, 4
CFG = dict(type="ies", threshold=0.05, moving_average=1, window=1)
CORE = IESParams(threshold=0.05, moving_average=1, window=1)


def loss_of(indices: torch.Tensor, epoch: int, forwarded: bool) -> torch.Tensor:
    """Hand-made per-sample losses: a third settle to a constant, a third keep oscillating, a third settle
    and then jump at epoch 6 (they leave, are forwarded and come back); forward-only losses differ a little."""
    i, e = indices.double(), float(epoch)
    settle = 1.0 + 0.5 * torch.exp(-3.0 * torch.tensor(e)) * torch.cos(i)
    wobble = 1.0 + 0.3 * math.sin(1.7 * e) * torch.sin(i + 1)
    jump = settle + (0.8 if epoch >= 6 else 0.0)
    out = torch.where(indices % 3 == 0, settle, torch.where(indices % 3 == 1, wobble, jump))
    return (out + (1e-4 if forwarded else 0.0)).float()


class HandMadeServices:
    """A trainer's services whose forward pass is ``loss_of`` (a test double of ``pretrain.services``)."""

    def __init__(self):
        self.epoch, self.forwarded, self.model, self.device = 0, 0, None, torch.device("cpu")

    def count_forwards(self, resolution, samples):
        self.forwarded += samples

    def forward_samples(self, indices, *, batch_stats=False):
        self.count_forwards(32, indices.numel())
        return loss_of(indices, self.epoch, forwarded=True), torch.zeros(indices.numel(), 3)


def simulate(world: int = 1, rank: int = 0) -> list[dict]:
    from pretrain.methods import build_method
    from pretrain.methods.base import Batch, RunInfo, StepInfo, StepRecord

    run = RunInfo(num_samples=N, epochs=EPOCHS, batch_size=BATCH, img_size=32, world_size=world, rank=rank, seed=SEED)
    method, services = build_method(CFG, run), HandMadeServices()
    method.build_feed(None, 0)
    method.setup(services)
    out = []
    for epoch in range(1, EPOCHS + 1):
        method.begin_epoch(epoch)
        method.sampler.set_epoch(epoch)
        services.epoch = epoch
        order = torch.tensor(list(method.sampler))
        for s, lo in enumerate(range(0, order.numel(), BATCH)):
            idx = order[lo:lo + BATCH]
            step = StepInfo(epoch, s, math.ceil(order.numel() / BATCH), 0)
            batch = method.select(Batch(torch.zeros(idx.numel(), 1), idx % 3, idx), step)
            padded = rank + world * (lo + torch.arange(idx.numel())) >= method.sampler.subset_size
            losses = loss_of(batch.indices, epoch, forwarded=False) + 100 * padded
            method.record(StepRecord(batch.indices, losses, torch.zeros(idx.numel(), 3), idx % 3, step))
        subset = method.sampler.subset.clone()
        result = method.end_epoch(epoch)
        out.append({"subset": subset, "log": result.log, "forwarded": services.forwarded,
                    "history": method.history.clone()})
    return out


def expected_epochs() -> list[dict]:
    """The same epochs from the rule alone: trained samples give their training loss, excluded ones their
    forward loss; the next epoch excludes per excluded_set."""
    h = torch.full((N, CORE.history_length), NAN)
    excluded, out = torch.empty(0, dtype=torch.int64), []
    for epoch in range(1, EPOCHS + 1):
        keep = torch.ones(N, dtype=torch.bool)
        keep[excluded] = False
        out.append({"subset": torch.nonzero(keep).flatten(), "forwarded": 0 if epoch == EPOCHS else excluded.numel()})
        if epoch == EPOCHS:
            break
        losses = loss_of(torch.arange(N), epoch, forwarded=False)
        losses[excluded] = loss_of(excluded, epoch, forwarded=True)
        push_losses(h, losses)
        excluded = excluded_set(h, CORE, 2)
    return out


def check_against_rule(got: list[dict]) -> None:
    want, forwarded = expected_epochs(), 0
    for epoch, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        assert torch.equal(g["subset"], w["subset"]), epoch
        forwarded += w["forwarded"]
        assert g["forwarded"] == forwarded and g["log"]["forwarded"] == w["forwarded"], epoch  # counted in FLOPs
    sizes = [g["subset"].numel() for g in got]
    # epochs 1-4 train all (4 losses before a judgement); then the settled third (and the jumpers until
    # their jump) leave; the jumpers come back after epoch 6
    assert sizes[:4] == [N] * 4 and min(sizes[4:]) < N
    assert got[5]["log"]["returned"] > 0


def test_adapter_excludes_forwards_and_brings_back():
    check_against_rule(simulate())


@pytest.mark.slow
def test_two_gloo_ranks_agree_with_one_process(tmp_path):
    ranks, one = gloo_ranks.run_ranks(__file__, tmp_path), simulate()
    for r in range(2):
        for epoch, (a, b) in enumerate(zip(ranks[r], one, strict=True), start=1):
            assert torch.equal(a["subset"], b["subset"]), (r, epoch)
            # padding repeats (recorded +100) never reach a history
            assert torch.equal(a["history"].nan_to_num(-1), b["history"].nan_to_num(-1)), (r, epoch)
            assert a["log"] == b["log"], (r, epoch)
    check_against_rule(one)


def rank_job(world: int, rank: int, out) -> object:
    return simulate(world, rank)


if __name__ == "__main__":
    gloo_ranks.serve(rank_job)


def test_plan_is_a_bound_and_bad_params_are_config_errors():
    from pretrain.methods import build_method
    from pretrain.methods.base import RunInfo

    plan = build_method(CFG, RunInfo(num_samples=10, epochs=6)).plan()
    assert plan.bound == "at most" and plan.sizes == (10,) * 6
    assert f"at least {100 * flops_lower_bound(10, 6, CORE, 2):.1f}% of the FLOPs" in " ".join(plan.notes)
    with pytest.raises(ConfigError, match="did you mean moving_average"):
        build_method({"type": "ies", "moving_averag": 2}, RunInfo(num_samples=10, epochs=6))


def test_bad_params_are_one_error_line_and_exit_2_before_training(tmp_path):
    lines = harness.rejected("tiny_digits_ies.py", tmp_path / "run", ["method.window=0"])
    assert lines == ["error: method.window (IES's number of summed averages) must be an integer >= 1, got 0"]


@pytest.mark.extended
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Killed inside epoch 6, which trains without the samples excluded after epoch 5."""
    harness.check_kill_and_resume("tiny_digits_ies.py", tmp_path, [], kill_in=6, epochs=6)
    log = harness.log_lines(tmp_path / "uninterrupted")
    assert log[4]["next_excluded"] > 0 and log[5]["kept_fraction"] < 1
