"""KAKURENBO: F's schedule, the LR factor, the hide set, prediction statistics, the dry-run bound."""
from __future__ import annotations

import math

import pytest
import torch

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
    assert refreshed == [0, 5, 5, 2, 2, 2] and trained == [10, 5, 5, 8, 8, 8]
    # without warm-up epoch 1 still hides nothing: no sample has been scored yet
    constant = KakurenboParams(max_fraction=0.5, warmup_epochs=0, milestones=(), factors=(1.0,))
    assert cost_bound(10, 2, constant)[1] == [0, 5]


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_fraction=1.0), r"max_fraction F must be in \[0, 1\), got 1.0"),
    (dict(max_fraction=-0.1), "max_fraction"),
    (dict(tau=0.0), r"tau must be in \(0, 1\), got 0.0"),
    (dict(tau=1.0), "tau"),
    (dict(warmup_epochs=-1), "warmup_epochs"),
    (dict(milestones=(0.6, 0.3, 0.9)), "milestones"),
    (dict(milestones=(0.5,)), "factors must be 2 numbers"),
    (dict(factors=(1.0, 0.8, 0.6, 1.5)), "factors"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KakurenboParams(**kwargs)
