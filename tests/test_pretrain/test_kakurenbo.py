"""KAKURENBO: F's schedule, the LR factor, the hide set, prediction statistics, the dry-run bound."""
from __future__ import annotations

import math

import pytest
import torch
from helpers import gloo_ranks, harness

from pretrain.selection.kakurenbo import (
    KakurenboParams,
    cost_bound,
    hidden_fraction,
    hide_set,
    lr_factor,
    milestone_epochs,
    prediction_stats,
)

NAN = math.nan


def test_fraction_schedule_on_the_papers_90_epochs_and_on_120():
    p = KakurenboParams(max_fraction=0.3, warmup_epochs=5)
    assert milestone_epochs(90, p) == [30, 60, 80]  # the official script's 0-based `epoch < 30/60/80`
    f = [hidden_fraction(e, 90, p) for e in range(1, 91)]
    # 1-based epochs: 1-5 warm-up, 6-30 F, 31-60 0.8F, 61-80 0.6F, 81-90 0.4F
    assert f[:5] == [0.0] * 5
    assert set(f[5:30]) == {0.3} and set(f[30:60]) == {0.24} and set(f[60:80]) == {0.18} and set(f[80:]) == {0.12}
    assert milestone_epochs(120, p) == [40, 80, 107]  # 8/9 * 120 = 106.7
    # decimals written in a config land on the intended epoch
    assert milestone_epochs(90, KakurenboParams(milestones=(0.3333, 0.6667, 0.8889))) == [30, 60, 80]


def test_lr_factor_compensates_the_maximum_hidden_fraction():
    p = KakurenboParams(max_fraction=0.3, warmup_epochs=5)
    assert lr_factor(5, 90, p) == 1.0
    assert lr_factor(6, 90, p) == pytest.approx(1 / 0.7)
    assert lr_factor(31, 90, p) == pytest.approx(1 / 0.76)
    assert lr_factor(90, 90, p) == pytest.approx(1 / 0.88)
    assert lr_factor(10, 90, KakurenboParams(max_fraction=0.0)) == 1.0


def test_hide_set_lowest_losses_correct_and_confident():
    losses = torch.tensor([0.5, 0.1, NAN, 0.3, 0.3, 2.0, 0.2, 1.0, 0.05, 3.0])
    correct = torch.tensor([True] * 8 + [False, True])
    confidence = torch.tensor([0.9, 0.75, 0.99, 0.9, 0.9, 0.9, 0.74, 0.9, 0.99, 0.9])
    # F = 0.4 of N = 10: 4 candidates, ascending loss 8 (0.05), 1 (0.1), 6 (0.2), then 3 and 4 tie at
    # 0.3 and the lower index (3) wins. 8 is wrong -> moved back; 6 is under tau -> moved back;
    # 1 sits exactly at tau = 0.75 -> hidden; 3 -> hidden. 2 was never scored: never hidden.
    assert hide_set(losses, correct, confidence, 0.4, 0.75).tolist() == [1, 3]
    # F = 0.5: candidate 4 joins
    assert hide_set(losses, correct, confidence, 0.5, 0.75).tolist() == [1, 3, 4]
    assert hide_set(losses, correct, confidence, 0.0, 0.75).tolist() == []
    # fewer scored samples than candidates: all scored ones are candidates, the unscored still train
    few = torch.tensor([0.1, NAN, NAN, NAN])
    assert hide_set(few, torch.ones(4, dtype=torch.bool), torch.ones(4), 0.75, 0.7).tolist() == [0]
    assert hide_set(torch.full((4,), NAN), torch.ones(4, dtype=torch.bool), torch.ones(4), 0.5, 0.7).tolist() == []


def test_prediction_stats_are_per_sample():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    correct, conf = prediction_stats(logits, torch.tensor([0, 2]))
    assert correct.tolist() == [True, False]
    e = math.e
    assert conf.tolist() == pytest.approx([e**2 / (e**2 + 2), e / (e + 2)])
    # a sample's confidence does not depend on its batch-mates (a softmax over the batch axis would)
    alone = prediction_stats(logits[:1], torch.tensor([0]))[1]
    assert conf[0].item() == pytest.approx(alone.item())
    # soft targets count as their argmax class
    soft = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]])
    assert prediction_stats(logits, soft)[0].tolist() == [True, False]


def test_cost_bound():
    # E = 6, warm-up 1, F = 0.5 halved from epoch round(0.5 * 6) = 3 (0-based), i.e. 1-based epoch 4
    p = KakurenboParams(max_fraction=0.5, warmup_epochs=1, milestones=(0.5,), factors=(1.0, 0.5))
    trained, refreshed = cost_bound(10, 6, p)
    assert trained == [10, 5, 5, 8, 8, 8] and refreshed == [0, 5, 5, 2, 2, 0]  # no refresh after the last
    # without warm-up epoch 1 still hides nothing: no sample has been scored yet
    constant = KakurenboParams(max_fraction=0.5, warmup_epochs=0, milestones=(), factors=(1.0,))
    assert cost_bound(10, 3, constant) == ([10, 5, 5], [0, 5, 0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_fraction=1.0), r"method.max_fraction \(KAKURENBO's F\) must be in \[0, 1\), got 1.0"),
    (dict(max_fraction=-0.1), "max_fraction"),
    (dict(tau=0.0), r"method.tau .* must be in \(0, 1\), got 0.0"),
    (dict(tau=1.0), "tau"),
    (dict(warmup_epochs=-1), "warmup_epochs"),
    (dict(milestones=(0.6, 0.3, 0.9)), "milestones"),
    (dict(milestones=(0.5,)), "factors .* must be 2 numbers"),
    (dict(factors=(1.0, 0.8, 0.6, 1.5)), "factors"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KakurenboParams(**kwargs)


# -- the adapter (pretrain/methods/kakurenbo.py), one process and two real gloo ranks --------------------
N, EPOCHS, BATCH, SEED, CLASSES = 601, 4, 32, 3, 3
# epoch 1 warm-up; F = 0.4 in epoch 2, 0.4 * 0.5 from 0-based epoch round(0.5 * 4) = 2, i.e. epochs 3-4
CFG = dict(type="kakurenbo", max_fraction=0.4, tau=0.6, warmup_epochs=1, milestones=[0.5], factors=[1.0, 0.5])
CORE = KakurenboParams(max_fraction=0.4, tau=0.6, warmup_epochs=1, milestones=(0.5,), factors=(1.0, 0.5))


def forward_of(indices: torch.Tensor, epoch: int, refresh: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hand-made logits per (sample, epoch, pass): the target class (index % 3) scores a in [0, 4]; every
    fifth sample puts it on the wrong class. Returns (losses, logits, targets)."""
    targets = indices % CLASSES
    a = 2.0 + 2.0 * torch.sin(indices.double() * 0.37 + epoch + (0.5 if refresh else 0.0))
    winner = torch.where(indices % 5 == 0, (targets + 1) % CLASSES, targets)
    logits = torch.zeros(indices.numel(), CLASSES, dtype=torch.float32)
    logits[torch.arange(indices.numel()), winner] = a.float()
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none"), logits, targets


class HandMadeServices:
    """A trainer's services whose forward pass is ``forward_of`` (a test double of ``pretrain.services``)."""

    def __init__(self):
        self.epoch, self.forwarded, self.model, self.device = 0, 0, None, torch.device("cpu")

    def count_forwards(self, resolution, samples):
        self.forwarded += samples

    def forward_samples(self, indices, *, batch_stats=False):
        self.count_forwards(32, indices.numel())
        losses, logits, _ = forward_of(indices, self.epoch, refresh=True)
        return losses, logits


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
            batch = method.select(Batch(torch.zeros(idx.numel(), 1), idx % CLASSES, idx), step)
            losses, logits, targets = forward_of(batch.indices, epoch, refresh=False)
            padded = rank + world * (lo + torch.arange(idx.numel())) >= method.sampler.subset_size
            method.record(StepRecord(batch.indices, losses + 100 * padded, logits, targets, step))
        subset, lr = method.sampler.subset.clone(), method.lr_factor(epoch)
        result = method.end_epoch(epoch)
        out.append({"subset": subset, "lr": lr, "log": result.log, "forwarded": services.forwarded,
                    "tables": {k: v.clone() for k, v in method.tables.items()}})
    return out


def expected_epochs() -> list[dict]:
    """The same epochs from the rule alone: trained samples keep their training forward, hidden ones
    their refresh forward; the next epoch hides per hide_set."""
    loss, correct, conf = torch.full((N,), NAN), torch.zeros(N, dtype=torch.bool), torch.zeros(N)
    hidden, out = torch.empty(0, dtype=torch.int64), []
    for epoch in range(1, EPOCHS + 1):
        keep = torch.ones(N, dtype=torch.bool)
        keep[hidden] = False
        trained = torch.nonzero(keep).flatten()
        last = epoch == EPOCHS  # no refresh pass after the last epoch
        for idx, refresh in ((trained, False),) if last else ((trained, False), (hidden, True)):
            lo, lg, tg = forward_of(idx, epoch, refresh)
            c, p = prediction_stats(lg, tg)
            loss[idx], correct[idx], conf[idx] = lo, c, p
        out.append({"subset": trained, "refreshed": 0 if last else hidden.numel(), "loss": loss.clone()})
        f = hidden_fraction(epoch + 1, EPOCHS, CORE) if epoch < EPOCHS else 0.0
        hidden = hide_set(loss, correct, conf, f, CORE.tau)
    return out


def check_against_rule(got: list[dict]) -> None:
    want, forwarded = expected_epochs(), 0
    for epoch, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        assert torch.equal(g["subset"], w["subset"]), epoch
        assert g["log"]["refreshed"] == w["refreshed"], epoch
        forwarded += w["refreshed"]
        assert g["forwarded"] == forwarded, epoch  # the refresh pass is counted in the cost
        assert torch.allclose(g["tables"]["loss"], w["loss"], equal_nan=True), epoch
        assert g["lr"] == pytest.approx(lr_factor(epoch, EPOCHS, CORE)), epoch
    sizes = [g["subset"].numel() for g in got]
    # warm-up trains all; epoch 2 hides at most floor(0.4 N), epochs 3-4 at most floor(0.2 N); some are hidden
    assert sizes[0] == N and N - 240 <= sizes[1] < N and N - 120 <= sizes[2] < N and N - 120 <= sizes[3] < N
    assert [g["lr"] for g in got] == pytest.approx([1.0, 1 / 0.6, 1 / 0.8, 1 / 0.8])


def test_adapter_hides_refreshes_and_scales_the_lr():
    check_against_rule(simulate())


@pytest.mark.slow
def test_two_gloo_ranks_agree_with_one_process(tmp_path):
    ranks = gloo_ranks.run_ranks(__file__, tmp_path)
    one = simulate()
    for r in range(2):
        got = ranks[r]
        for epoch, (a, b) in enumerate(zip(got, one, strict=True), start=1):
            assert torch.equal(a["subset"], b["subset"]), (r, epoch)
            for key in b["tables"]:  # padding repeats (recorded +100) never reach the tables
                assert torch.equal(a["tables"][key].nan_to_num(-1), b["tables"][key].nan_to_num(-1)), (r, key, epoch)
            assert a["log"] == b["log"], (r, epoch)
    check_against_rule(one)


def rank_job(world: int, rank: int, out) -> object:
    return simulate(world, rank)


if __name__ == "__main__":
    gloo_ranks.serve(rank_job)


# -- a real kill -9 inside an epoch, then --resume ---------------------------------------------------------


# Extended: tests/test_reliability/test_interrupt.py kills and resumes this method's tiny config in CI on
# 1 and 2 ranks; this one aims the kill at the epoch where the rule is active.
@pytest.mark.extended
def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    """4 epochs: warm-up, then F_e = 0.24, 0.24, 0.18; killed inside epoch 3 (samples hidden, refreshed)."""
    options = ["schedule.epochs=4", "schedule.milestones=[3]"]
    final = harness.check_kill_and_resume("tiny_digits_kakurenbo.py", tmp_path, options, kill_in=3, epochs=4)
    log = harness.log_lines(tmp_path / "uninterrupted")
    assert log[2]["refreshed"] > 0 and log[2]["kept_fraction"] < 1 and log[2]["lr_factor"] == pytest.approx(1 / 0.76)
    assert final["method"]["hidden"].numel() == 0  # nothing to hide after the last epoch


@pytest.mark.parametrize("option, message", [
    ("method.tau=1", "method.tau (KAKURENBO's confidence threshold) must be in (0, 1), got 1"),
    ("method.max_fraction=1.0", "method.max_fraction (KAKURENBO's F) must be in [0, 1), got 1.0"),
])
def test_bad_params_are_one_error_line_and_exit_2_before_training(option, message, tmp_path):
    assert harness.rejected("tiny_digits_kakurenbo.py", tmp_path / "run", [option]) == [f"error: {message}"]
