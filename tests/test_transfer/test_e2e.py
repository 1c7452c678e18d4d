"""End to end on CPU through the real entry points: ``tools/train.py`` fine-tunes each task's tiny config
from a backbone weights file and validates with the real metric (pycocotools bbox/segm, xtcocotools
keypoints, mmseg IoU); ``tools/test.py`` re-evaluates the checkpoint; both leave ``metrics.json``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# tiny config -> (its task, tiny data subfolder, metric keys that must be there)
CONFIGS = {
    "faster-rcnn_r50_fpn_tiny": ("det", "coco", ["coco/bbox_mAP", "coco/bbox_mAP_50"]),
    "retinanet_r50_fpn_tiny": ("det", "coco", ["coco/bbox_mAP", "coco/bbox_mAP_50"]),  # one-stage, focal loss
    "mask-rcnn_r50_fpn_tiny": ("ins", "coco", ["coco/bbox_mAP", "coco/segm_mAP"]),
    "td-hm_res50_tiny": ("pose", "coco", ["coco/AP", "coco/AR"]),
    "pspnet_r50b-d8_tiny": ("seg", "cityscapes", ["mIoU", "aAcc"]),
}


def run_tool(tool: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / tool), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    return proc, time.perf_counter() - start


def read_metrics(work) -> dict:
    return json.loads((work / "metrics.json").read_text())


# CI runs one ResNet-50 recipe through both tools (the 318-key ResNet-50 load, tools/test.py repeating the
# final validation); every recipe's R18 tiny config goes through tools/train.py in CI in
# tests/test_reliability/test_transfer_faults.py (kill and resume) and through the pipeline in the demo test,
# so the other R50 recipes run under ``-m extended`` (CI time: 505 s of test time measured on the 2-core machine).
IN_CI = "faster-rcnn_r50_fpn_tiny"


@pytest.mark.slow
@pytest.mark.parametrize("config", [c if c == IN_CI else pytest.param(c, marks=pytest.mark.extended)
                                    for c in sorted(CONFIGS)])
def test_tiny_config_trains_evaluates_and_tests(config, tiny_root, backbones, tmp_path):
    task, subset, keys = CONFIGS[config]
    config_path = ROOT / "configs" / "transfer" / f"{config}.py"
    work = tmp_path / "work"
    train, train_s = run_tool("train.py", config_path, "--work-dir", work, "--backbone", backbones["resnet50"],
                              "--data-root", tiny_root / subset)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    log = train.stdout + train.stderr
    assert "318/318 model keys matched, 0 missing, 0 shape-mismatched" in log  # our weights went in
    record = read_metrics(work)
    assert record["task"] == task and record["config"] == str(config_path)
    assert record["backbone"] == str(backbones["resnet50"])
    assert record["backbone_meta"]["arch"] == "resnet50"
    assert set(keys) <= set(record["metrics"]), sorted(record["metrics"])
    assert all(isinstance(record["metrics"][k], float) for k in keys)
    if task == "seg":
        assert 0 < record["metrics"]["aAcc"] <= 100  # some pixels right even after 4 iterations
    print(f"\n[{task}] {config}: train+val {train_s:.1f} s, metrics {record['metrics']}")

    last = (work / "last_checkpoint").read_text().strip()
    test_work = tmp_path / "test"
    test, test_s = run_tool("test.py", config_path, last, "--work-dir", test_work,
                            "--data-root", tiny_root / subset)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    tested = read_metrics(test_work)
    # Same weights, same data, deterministic inference: the test repeats the final validation, and it
    # reports the backbone the checkpoint was fine-tuned from (read from the checkpoint's config).
    assert tested["metrics"] == pytest.approx(record["metrics"], abs=1e-4)
    assert tested["backbone"] == str(backbones["resnet50"]) and tested["backbone_meta"]["arch"] == "resnet50"
    print(f"[{task}] test {test_s:.1f} s")


# 8 of the config's 60 iterations, validated and checkpointed at the end: what is compared is the test
# tools on 1 and 2 processes over the same checkpoint, which any number of iterations gives (CI time)
SHORT = ["train_cfg.max_iters=8", "train_cfg.val_interval=8", "default_hooks.checkpoint.interval=8"]

# tools/train.py's entry point on each rank, then the gloo threads still alive when it has returned
THREADS_WORKER = """
import os, sys
from helpers.gloo_ranks import gloo_threads
from transfer.mm.cli import train_main
code = train_main(sys.argv[1:])
print(f"rank {os.environ['RANK']} exit {code} gloo threads {gloo_threads()}")
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through /proc")
def test_resnet18_variant_trains_and_tests_distributed_on_cpu_and_closes_its_process_group(tiny_root, backbones,
                                                                                            tmp_path):
    """The demo path (a pre-trained timm resnet18 into an `_r18` tiny config), run as 2 processes with
    the pytorch launcher (gloo on CPU); tools/dist_test.sh on 2 processes then gives the same metrics as
    tools/test.py on one. (Not the same as the validation during training: with plain BN, as the tiny
    configs use on CPU, each rank keeps its own running statistics and the checkpoint holds rank 0's.)

    mmengine leaves the process group open after ``runner.train()``; its gloo threads then run into
    interpreter exit, where one can abort a rank that finished (see
    ``dar_common.process_group.close_distributed``). The transfer entry point closes the group: no gloo
    thread is left when ``train_main`` returns (without that, three are listed on each rank)."""
    config = ROOT / "configs" / "transfer" / "pspnet_r18b-d8_tiny.py"
    work, data = tmp_path / "work", tiny_root / "cityscapes"
    worker = tmp_path / "worker.py"
    worker.write_text(THREADS_WORKER)
    train = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29631",
         str(worker), str(config), "--launcher", "pytorch", "--work-dir", str(work),
         "--backbone", str(backbones["resnet18"]), "--data-root", str(data), "--cfg-options", *SHORT],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])})
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "into DarResNet(depth=18): 120/120 model keys matched" in train.stdout + train.stderr
    lines = sorted(line for line in train.stdout.splitlines() if line.startswith("rank "))
    assert lines == ["rank 0 exit 0 gloo threads []", "rank 1 exit 0 gloo threads []"], train.stdout[-2000:]
    assert "aAcc" in read_metrics(work)["metrics"]
    last = Path((work / "last_checkpoint").read_text().strip())  # iter_8.pth
    single, _ = run_tool("test.py", config, last, "--work-dir", tmp_path / "single",
                         "--data-root", data)
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]
    test = subprocess.run(
        ["bash", str(ROOT / "tools" / "dist_test.sh"), str(config), str(last), "2",
         "--work-dir", str(tmp_path / "test"), "--data-root", str(data)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHON": sys.executable, "PORT": "29633"})
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    tested = read_metrics(tmp_path / "test")["metrics"]
    assert tested["aAcc"] > 0 and tested == pytest.approx(read_metrics(tmp_path / "single")["metrics"], abs=1e-4)
