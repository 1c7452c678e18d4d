"""BatchNorm recalibration: torch's update_bn really recomputes the statistics as the cumulative average
over the seeded uniform sample (checked against an independent replay), and the config/tool paths record it."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.transfer_runs import tool_in_process
from torch import nn

from pretrain.bn_recalibrate import BNRecalibrate, recalibrate_bn
from pretrain.data import build_dataset
from pretrain.errors import ConfigError
from pretrain.models import build_model

ROOT = Path(__file__).resolve().parents[2]
DIGITS = dict(type="digits", img_size=32, batch_size=32, scale=(0.5, 1.0), hflip=0.0, crop_pct=1.0)


def bns(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def replay_statistics(model: nn.Module, dataset, samples: int, seed: int, batch_size: int) -> dict:
    """Per BN layer: the mean over batches of each batch's input mean and unbiased variance, computed here.

    In train mode a BN layer normalises with its batch's statistics, so every layer's input is the same
    whatever its running statistics are: one train-mode pass of a copy reproduces the inputs update_bn saw.
    """
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:samples].tolist()
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches[-1]) == 1:
        batches[-2] += batches.pop()
    copy_ = copy.deepcopy(model).train()
    seen: dict[str, list] = {name: [] for name in bns(copy_)}
    handles = [m.register_forward_pre_hook(lambda mod, inp, name=name: seen[name].append(
        (inp[0].mean((0, 2, 3)), inp[0].var((0, 2, 3), unbiased=True)))) for name, m in bns(copy_).items()]
    with torch.no_grad():
        for batch in batches:
            copy_(torch.stack([dataset[i][0] for i in batch]))
    for h in handles:
        h.remove()
    return {name: (torch.stack([m for m, _ in v]).mean(0), torch.stack([v_ for _, v_ in v]).mean(0), len(v))
            for name, v in seen.items()}


@pytest.fixture(scope="module")
def train_set():
    return build_dataset(DIGITS, "train", seed=0)


def test_update_bn_gives_the_cumulative_average_over_the_sample(train_set):
    torch.manual_seed(0)
    model = build_model("test_resnet", 10)
    model.eval()
    params = {k: v.clone() for k, v in model.named_parameters()}
    momenta = {n: m.momentum for n, m in bns(model).items()}
    before = {n: m.running_mean.clone() for n, m in bns(model).items()}
    samples, seed, batch_size = 97, 5, 32  # 32 + 32 + 33: the last single image joins the batch before
    expected = replay_statistics(model, train_set, samples, seed, batch_size)
    done = recalibrate_bn(model, train_set, samples, seed, batch_size)
    assert done == {"samples": 97, "seed": 5, "batch_size": 32, "batches": 3}
    for name, m in bns(model).items():
        mean, var, count = expected[name]
        assert count == 3 and int(m.num_batches_tracked) == 3
        torch.testing.assert_close(m.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.running_var, var, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(m.running_mean, before[name])
        assert m.momentum == momenta[name]  # update_bn restores each layer's momentum
    assert not model.training  # and the mode
    assert all(torch.equal(params[k], v) for k, v in model.named_parameters())  # weights untouched


def test_the_seed_fixes_the_sample(train_set):
    def stats(seed: int) -> torch.Tensor:
        torch.manual_seed(0)
        model = build_model("test_resnet", 10)
        recalibrate_bn(model, train_set, 64, seed, 32)
        return torch.cat([m.running_mean for m in bns(model).values()])

    assert torch.equal(stats(1), stats(1))
    assert not torch.allclose(stats(1), stats(2))


def test_bn_recalibrate_config_is_checked():
    assert BNRecalibrate.from_dict(None) is None
    assert BNRecalibrate.from_dict(dict(samples=100)) == BNRecalibrate(samples=100, seed=0)
    with pytest.raises(ConfigError, match="needs samples"):
        BNRecalibrate.from_dict(dict(seed=1))
    with pytest.raises(ConfigError, match="samples must be"):
        BNRecalibrate.from_dict(dict(samples=1))
    with pytest.raises(ConfigError, match="does not take"):
        BNRecalibrate.from_dict(dict(samples=10, momentum=0.1))


@pytest.mark.slow
def test_publish_model_recalibrate_bn_records_it_in_the_meta(tiny, tmp_path):
    work_dir = tiny.finished("uniform")  # shared with the other pre-training tests of the session
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(ROOT / "tools" / "publish_model.py"), str(work_dir), str(tmp_path / "pub" / "uniform"),
            "--recalibrate-bn", "200", "--bn-seed", "3"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "BatchNorm recalibrated on 200 training images (seed 3" in proc.stdout
    (published,) = (tmp_path / "pub").glob("uniform-*.pth")
    saved = torch.load(published, weights_only=False)
    record = saved["meta"]["bn_recalibrate"]
    assert (record["samples"], record["seed"], record["batch_size"]) == (200, 3, 32)
    summary = tiny.log(work_dir)[-1]
    assert record["top1_before"] == pytest.approx(summary["top1"])  # the run's own last evaluation
    assert saved["meta"]["top1"] == record["top1_after"]
    # the published statistics are those of recalibrating the run's backbone here; the weights are the run's
    original = torch.load(work_dir / "backbone.pth", weights_only=False)["state_dict"]
    model = build_model("test_resnet", 10)
    model.load_state_dict(original)
    recalibrate_bn(model, build_dataset(dict(DIGITS), "train", seed=0, uint8=True), 200, 3, 32)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(saved["state_dict"][key], value, rtol=1e-5, atol=1e-6)
        if key.endswith(("weight", "bias")):
            assert torch.equal(saved["state_dict"][key], original[key])
    assert any(not torch.equal(saved["state_dict"][k], original[k]) for k in original if k.endswith("running_mean"))

    proc = tool_in_process("publish_model.py", *argv[2:-4], "--recalibrate-bn", "1")  # a refusal: in this process
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --recalibrate-bn.samples must be")


@pytest.mark.slow
def test_bn_recalibrate_in_the_run_config(tiny, tmp_path):
    work_dir = tmp_path / "run"
    assert tiny.run("uniform", work_dir, "bn_recalibrate.samples=300", "bn_recalibrate.seed=2") == 0
    log = tiny.log(work_dir)
    last = [r for r in log if r["type"] == "epoch"][-1]
    record = last["bn_recalibrate"]
    reference = tiny.log(tiny.finished("uniform"))
    assert record["samples"] == 300 and record["seed"] == 2
    assert record["top1_before"] == reference[-1]["top1"]  # the same run up to the recalibration
    assert last["top1"] == log[-1]["top1"] == record["top1_after"]
    meta = torch.load(work_dir / "backbone.pth", weights_only=False)["meta"]
    assert meta["bn_recalibrate"] == record and meta["top1"] == record["top1_after"]
