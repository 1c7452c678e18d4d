"""Online selection: rank probabilities, the statistics of the draw, side-effect-free scoring, the selector."""

import copy
import itertools
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from scipy.stats import chisquare
from torch import nn

from pretrain.selection.online import (
    OnlineParams,
    OnlineSelector,
    active_step_range,
    rank_probabilities,
    score_losses,
    select_by_rank,
)

# pool losses in scrambled order: position -> rank (1 = easiest)
LOSSES = torch.tensor([0.3, 2.5, 0.1, 1.7, 0.9, 4.0])
RANKS = torch.tensor([2, 5, 1, 4, 3, 6])


def test_rank_probabilities_values_ties_nan():
    assert torch.allclose(rank_probabilities(LOSSES, 1.0), RANKS.double() / RANKS.sum())
    assert torch.allclose(rank_probabilities(LOSSES, 2.0), RANKS.double() ** 2 / (RANKS**2).sum())
    assert torch.allclose(rank_probabilities(LOSSES, 0.0), torch.full((6,), 1 / 6, dtype=torch.float64))
    # ties share the empirical-CDF rank #{j: l_j <= l_i}; NaN is the hardest
    p = rank_probabilities(torch.tensor([1.0, float("nan"), 1.0, 0.5]), 1.0)
    assert torch.allclose(p, torch.tensor([3.0, 4.0, 3.0, 1.0], dtype=torch.float64) / 11)
    # huge beta stays a valid distribution (no underflow to all-zero)
    assert rank_probabilities(torch.rand(512), 50.0).min() > 0
    with pytest.raises(ValueError, match="beta"):
        rank_probabilities(LOSSES, -1.0)


def draw_counts(num_select, beta, trials, seed=0):
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(6)
    for _ in range(trials):
        pos = select_by_rank(LOSSES, num_select, beta, gen)
        assert pos.numel() == num_select and pos.unique().numel() == num_select
        counts[pos] += 1
    return counts


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_single_draw_frequencies_follow_rank_power(beta):
    counts = draw_counts(1, beta, trials=6000)
    uniform = torch.full((6,), 1000.0)
    linear = 6000 * RANKS.double() / RANKS.sum()
    right, wrong = (uniform, linear) if beta == 0 else (linear, uniform)
    assert chisquare(counts.numpy(), right.numpy()).pvalue > 1e-3
    # the same test rejects the other hypothesis, so it has the power to fail
    assert chisquare(counts.numpy(), wrong.numpy()).pvalue < 1e-6


def successive_inclusion(p, k):
    """Exact inclusion probabilities of drawing k of n without replacement, each draw ∝ p."""
    n, incl = len(p), [0.0] * len(p)
    for seq in itertools.permutations(range(n), k):
        prob, left = 1.0, 1.0
        for i in seq:
            prob *= p[i] / left
            left -= p[i]
        for i in seq:
            incl[i] += prob
    return torch.tensor(incl, dtype=torch.float64)


def test_batch_draw_matches_exact_without_replacement_inclusion():
    trials, k = 4000, 3
    counts = draw_counts(k, 1.0, trials, seed=1).double()
    p = rank_probabilities(LOSSES, 1.0).tolist()
    exact = successive_inclusion(p, k)
    assert exact.sum().item() == pytest.approx(k)
    z = (counts - trials * exact) / torch.sqrt(trials * exact * (1 - exact))
    assert z.abs().max() < 4  # Bonferroni-safe for 6 positions
    # inclusion rises with rank (harder -> more often), and "k * p" is measurably not the law
    assert torch.all(exact[torch.argsort(RANKS)].diff() > 0)
    naive = k * torch.tensor(p)
    z_naive = (counts - trials * naive) / torch.sqrt(trials * naive * (1 - naive))
    assert z_naive.abs().max() > 4
    # beta = 0 without replacement: every position is included with probability k / n
    flat = draw_counts(k, 0.0, trials, seed=2).double()
    assert ((flat - trials / 2) / math.sqrt(trials / 4)).abs().max() < 4


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=10, drop_rate=0.5)
    # move BN running stats away from their init so that a silent update would be visible
    with torch.no_grad():
        model.train()
        for _ in range(2):
            model(torch.randn(8, 3, 32, 32))
    return model


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("training", [True, False])
def test_score_losses_changes_no_model_or_rng_state(resnet, training):
    resnet.train(training)
    before, flags = snapshot(resnet), [m.training for m in resnet.modules()]
    cpu_rng = torch.get_rng_state()
    images, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    rng_after_inputs = torch.get_rng_state()
    losses = score_losses(resnet, images, targets, resolution=16)
    again = score_losses(resnet, images, targets, resolution=16)
    assert losses.shape == (8,) and losses.dtype == torch.float32 and torch.isfinite(losses).all()
    assert torch.equal(losses, again)  # dropout off: deterministic scores
    after = snapshot(resnet)
    assert before.keys() == after.keys() and any("num_batches_tracked" in k for k in after)
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert [m.training for m in resnet.modules()] == flags
    assert torch.equal(torch.get_rng_state(), rng_after_inputs) and not torch.equal(cpu_rng, rng_after_inputs)

    # scoring = low-res forward with BN batch statistics and dropout off, computed by hand on a copy
    ref = copy.deepcopy(resnet).eval()
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    with torch.no_grad():
        small = F.interpolate(images, size=(16, 16), mode="bilinear", antialias=True)
        want = F.cross_entropy(ref(small), targets, reduction="none")
    assert torch.allclose(losses, want, atol=1e-5)
    # ...and that reference forward did move the copy's running stats: the check above can fail
    assert not torch.equal(ref.bn1.running_mean, resnet.bn1.running_mean)


def test_score_losses_custom_loss_and_shape_check(resnet):
    images, targets = torch.randn(4, 3, 24, 24), torch.randint(0, 10, (4,))
    soft = F.one_hot(targets, 10).float()
    via_soft = score_losses(resnet, images, soft, 16, loss_fn=lambda lg, t: F.cross_entropy(lg, t, reduction="none"))
    assert torch.allclose(via_soft, score_losses(resnet, images, targets, 16), atol=1e-5)
    with pytest.raises(ValueError, match="one loss per sample"):
        score_losses(resnet, images, targets, 16, loss_fn=lambda lg, t: F.cross_entropy(lg, t))


def test_online_params_validation():
    assert OnlineParams(batch_size=32).pool_size == 64
    with pytest.raises(ValueError, match="pool_size"):
        OnlineParams(batch_size=32, pool_size=16)
    with pytest.raises(ValueError, match="beta"):
        OnlineParams(batch_size=32, beta=-0.5)
    with pytest.raises(ValueError, match="cooldown"):
        OnlineParams(batch_size=32, cooldown_fraction=1.5)
    with pytest.raises(ValueError, match="larger than the training resolution 64"):
        OnlineParams(batch_size=32, score_resolution=96).validate_against(64)
    OnlineParams(batch_size=32, score_resolution=96).validate_against(96)


def test_active_steps_warmup_and_cooldown():
    params = OnlineParams(batch_size=4, warmup_steps=10, cooldown_fraction=0.1)
    assert active_step_range(params, 100) == (10, 90)
    assert active_step_range(OnlineParams(batch_size=4, cooldown_fraction=0.07), 100) == (0, 93)  # exact
    sel = OnlineSelector(params, total_steps=100, seed=0, rank=0)
    assert [s for s in range(100) if sel.active(s)] == list(range(10, 90))
    assert active_step_range(OnlineParams(batch_size=4, warmup_steps=500), 100) == (90, 90)  # never active


class Exploding(nn.Module):
    def forward(self, x):
        raise AssertionError("an inactive step must not score")


def test_selector_returns_b_and_is_reproducible(resnet):
    params = OnlineParams(batch_size=4, pool_size=10, score_resolution=16, warmup_steps=1, cooldown_fraction=0.25)
    images, targets = torch.randn(10, 3, 32, 32), torch.arange(10) % 10
    sel = OnlineSelector(params, total_steps=4, seed=7, rank=0)
    # step 0: warm-up, uniform, no scoring; steps 1-2 active; step 3: cool-down
    xb, yb, pos = sel.select(Exploding(), images, targets, step=0)
    assert xb.shape == (4, 3, 32, 32) and torch.equal(yb, targets[pos]) and torch.equal(xb, images[pos])
    xb, yb, pos = sel.select(resnet, images, targets, step=1)
    assert xb.shape[0] == yb.shape[0] == 4 and pos.unique().numel() == 4 and xb.shape[-1] == 32
    assert sel.scored_samples == 10 and sel.active_steps == 1
    # same seed and step -> same draw (resume needs no generator state); other ranks draw differently
    assert torch.equal(OnlineSelector(params, 4, seed=7, rank=0).select(resnet, images, targets, 1)[2], pos)
    other = [OnlineSelector(params, 4, seed=7, rank=1).select(resnet, images, targets, s)[2] for s in range(4)]
    mine = [OnlineSelector(params, 4, seed=7, rank=0).select(resnet, images, targets, s)[2] for s in range(4)]
    assert any(not torch.equal(a, b) for a, b in zip(other, mine, strict=True))
    sel.select(Exploding(), images, targets, step=3)
    with pytest.raises(ValueError, match="pool of >= 4"):
        sel.select(resnet, images[:3], targets[:3], step=1)

    state = sel.state_dict()
    fresh = OnlineSelector(params, 4, seed=7, rank=0)
    fresh.load_state_dict(state)
    assert fresh.scored_samples == 10
    with pytest.raises(ValueError, match="total_steps"):
        OnlineSelector(params, 5, seed=7, rank=0).load_state_dict(state)


class NoisyNet(nn.Module):
    """Draws from the global RNG in every forward, whatever its mode (as some augmenting layers do)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 10)

    def forward(self, x):
        x = x + 0.01 * torch.randn_like(x)
        return self.fc(x.mean(dim=(2, 3)))


def test_score_losses_forks_the_rng():
    model, images, targets = NoisyNet(), torch.randn(4, 3, 8, 8), torch.arange(4)
    state = torch.get_rng_state()
    score_losses(model, images, targets, 4)
    assert torch.equal(torch.get_rng_state(), state)
    model(images)  # the same forward outside scoring does advance it: the check above can fail
    assert not torch.equal(torch.get_rng_state(), state)
