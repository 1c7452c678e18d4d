"""Cost accounting: analytic online overhead vs counted FLOPs, FLOP counting, equal-budget epochs."""

import pytest
import timm
import torch

from pretrain.cost import TRAIN_FLOPS_PER_FORWARD, forward_flops, train_flops_per_sample
from pretrain.methods.dar import dar_relative_cost
from pretrain.methods.online import online_relative_cost, online_relative_cost_analytic
from pretrain.methods.shortened import shortened_epochs
from pretrain.selection.dar import DaRParams
from pretrain.selection.online import OnlineParams


@pytest.fixture(scope="module")
def resnet18():
    return timm.create_model("resnet18", num_classes=1000)


def test_forward_flops_resnet18_and_model_untouched(resnet18):
    resnet18.train()
    before = {k: v.clone() for k, v in resnet18.state_dict().items()}
    flops = forward_flops(resnet18, (1, 3, 224, 224))
    # ResNet-18 is 1.82 GMACs at 224 (He et al. 2016: 1.8e9 "FLOPs" = multiply-adds); the counter counts 2
    assert 3.55e9 < flops < 3.70e9
    assert forward_flops(resnet18, (4, 3, 224, 224)) == pytest.approx(4 * flops)
    assert resnet18.training and next(resnet18.parameters()).device.type == "cpu"
    assert all(torch.equal(before[k], v) for k, v in resnet18.state_dict().items())
    assert train_flops_per_sample(resnet18, (3, 224, 224)) == pytest.approx(TRAIN_FLOPS_PER_FORWARD * flops)


def test_analytic_online_overhead_matches_counted_flops(resnet18):
    # thesis defaults: b̄ = 2b, r̂ = 96, r = 224 -> 1 + 2/3 * (96/224)^2
    analytic = online_relative_cost_analytic(256, 512, 96, 224)
    assert analytic == pytest.approx(1 + (2 / 3) * (96 / 224) ** 2)
    full, low = forward_flops(resnet18, (1, 3, 224, 224)), forward_flops(resnet18, (1, 3, 96, 96))
    counted = 1 + 2 * low / (TRAIN_FLOPS_PER_FORWARD * full)
    assert counted == pytest.approx(analytic, rel=0.02)  # CNN FLOPs scale with pixels
    assert online_relative_cost_analytic(4, 8, 96, 224, exponent=3) == pytest.approx(1 + (2 / 3) * (96 / 224) ** 3)


def test_online_overall_cost_counts_only_active_steps():
    params = OnlineParams(batch_size=256, warmup_steps=100, cooldown_fraction=0.1)
    step = online_relative_cost_analytic(256, 512, 96, 224)
    assert online_relative_cost(params, 1000, 224) == pytest.approx((200 + 800 * step) / 1000)
    # the thesis's R50 run: 300k steps against a 450k-step uniform baseline
    warm_cool = 100 + 30_000
    want = (warm_cool + (300_000 - warm_cool) * step) / 450_000
    assert online_relative_cost(params, 300_000, 224, baseline_steps=450_000) == pytest.approx(want)


def test_dar_cost_and_shortened_schedule():
    cifar = DaRParams(warmup=40, interval=10, keep=0.9, epochs=300, refresh=(150,))
    cost = dar_relative_cost(50_000, cifar)
    assert cost == pytest.approx(0.626784)
    assert shortened_epochs(300, cost) == 188  # DaP Table 2(f) "all data, 63% epochs"
    assert shortened_epochs(120, 0.7391) == 89 and shortened_epochs(3, 0.1) == 1
    with pytest.raises(ValueError, match="relative_cost"):
        shortened_epochs(100, 0.0)
