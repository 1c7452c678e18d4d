"""tools/analysis/get_flops.py: forward FLOPs and parameters of pre-training and transfer configs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import transfer  # noqa: F401  (first: on the lite stack it provides mmcv's ops)

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "analysis" / "get_flops.py"


def get_flops(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_pretrain_config_matches_the_cost_module():
    from pretrain.cost import forward_flops
    from pretrain.models import build_model

    proc = get_flops(ROOT / "configs/pretrain/tiny_digits_uniform.py", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    model = build_model("test_resnet", 10)  # the tiny configs' model; 10 digit classes
    assert record["kind"] == "pretrain" and record["input"] == [1, 3, 32, 32]
    assert record["flops"] == forward_flops(model, (1, 3, 32, 32))  # cost.py counts on the meta device
    assert record["params"] == sum(p.numel() for p in model.parameters())
    assert sum(record["flops_by_module"].values()) == pytest.approx(record["flops"])


def test_detection_config_counts_backbone_and_neck_like_a_direct_count():
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from torch.utils.flop_counter import FlopCounterMode

    config = ROOT / "configs/transfer/faster-rcnn_r18_fpn_tiny.py"
    proc = get_flops(config, "--shape", 128, 160, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["kind"] == "mmdet" and record["model"] == "FasterRCNN" and record["input"] == [1, 3, 128, 160]
    init_default_scope("mmdet")
    model = MODELS.build(Config.fromfile(config).model).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.neck(model.backbone(torch.zeros(1, 3, 128, 160)))
    direct = counter.get_total_flops()
    assert record["flops_by_module"]["backbone"] + record["flops_by_module"]["neck"] == direct
    assert record["flops"] > direct  # plus the RPN and RoI heads
    assert record["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("args, message", [
    (["configs/transfer/nope.py"], "error: config file not found: configs/transfer/nope.py"),
    (["configs/pretrain/tiny_digits_uniform.py", "--shape", "16"], "error: --shape takes H [W], each >= 32"),
])
def test_bad_input_is_one_error_line(args, message):
    proc = get_flops(*args)
    assert proc.returncode == 1 and proc.stderr.strip().startswith(message), proc.stderr
