"""The demo's transfer path loads the weights it is given: a short fine-tuning from a backbone file and the
same fine-tuning from a randomly initialised backbone (``--backbone none``, what the tables' scratch row
runs) must not train alike. With the seed fixed, data order, augmentation and head initialisation are the
same in both, so a backbone whose weights silently failed to load would reproduce scratch's losses
exactly; scratch run twice shows that the comparison is deterministic. Testing each checkpoint then
records where it came from (metrics.json's ``backbone``: the file, or None for scratch -- not the test
config's placeholder path, which once turned the demo's scratch rows into rows of an unknown backbone)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dar_common.workdir import latest_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "transfer" / "pspnet_r18b-d8_tiny.py"  # the demo's seg entry, 3 iterations
OPTIONS = ["train_cfg.max_iters=3", "randomness.seed=0", "default_hooks.logger.interval=1",
           "val_cfg=None", "val_dataloader=None", "val_evaluator=None"]


def fine_tune_losses(work: Path, backbone: str, data: Path) -> list[float]:
    """The training loss of each iteration, from mmengine's scalar log of a tools/train.py run."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), str(CONFIG), "--work-dir", str(work),
                           "--backbone", backbone, "--data-root", str(data), "--cfg-options", *OPTIONS],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (log,) = work.glob("*/vis_data/scalars.json")
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.mark.slow
def test_fine_tuning_from_weights_differs_from_scratch(tiny_root, backbones, tmp_path):
    data = tiny_root / "cityscapes"
    pretrained = fine_tune_losses(tmp_path / "pretrained", str(backbones["resnet18"]), data)
    scratch = fine_tune_losses(tmp_path / "scratch", "none", data)
    again = fine_tune_losses(tmp_path / "scratch_again", "none", data)
    assert len(pretrained) == len(scratch) == 3
    assert scratch == again  # same seed, same run: bit-identical losses
    assert all(p != s for p, s in zip(pretrained, scratch, strict=True)), (pretrained, scratch)

    # scratch's test records no backbone (a fine-tuned-from-file checkpoint's test recording its file is
    # checked in test_e2e.py)
    work = tmp_path / "scratch"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "test.py"), str(CONFIG), str(latest_checkpoint(work)),
                           "--work-dir", str(work), "--data-root", str(data)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads((work / "metrics.json").read_text())["backbone"] is None
