"""Metrics that never vanish: a real detector that returns no detections (a score threshold no score can
pass) gets COCO's numbers for an empty result set in metrics.json -- 0 where the val set has objects, -1
where it has none of that size -- instead of no metrics at all."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "transfer" / "faster-rcnn_r18_fpn_tiny.py"


def random_detector_checkpoint(path: Path) -> Path:
    """The tiny Faster R-CNN R18 with random weights, saved as training saves a whole model."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import transfer.mm.mmdet  # noqa: F401  (registers DarResNet)

    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.init_cfg = None
    init_default_scope("mmdet")
    torch.manual_seed(0)
    torch.save({"state_dict": MODELS.build(cfg.model).state_dict(), "meta": {}}, path)
    return path


def expected_empty_ap(ann_file: Path) -> dict[str, float]:
    """COCO AP with no detections, from the ground truth alone: 0 for each area range that holds objects
    (COCO's ranges on the annotation ``area``: small < 32², medium < 96², large above), else -1."""
    areas = [a["area"] for a in json.loads(ann_file.read_text())["annotations"] if not a.get("iscrowd")]
    ranges = {"s": (0, 32 ** 2), "m": (32 ** 2, 96 ** 2), "l": (96 ** 2, 1e10)}
    out = {f"coco/bbox_mAP{k}": 0.0 for k in ("", "_50", "_75")}
    out.update({f"coco/bbox_mAP_{k}": 0.0 if any(lo <= a < hi for a in areas) else -1.0
                for k, (lo, hi) in ranges.items()})
    return out


@pytest.mark.slow
def test_a_detector_without_detections_gets_coco_zeros(tiny_root, tmp_path):
    ckpt = random_detector_checkpoint(tmp_path / "random.pth")
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "test.py"), str(CONFIG), str(ckpt), "--work-dir",
                           str(work), "--data-root", str(tiny_root / "coco"),
                           "--cfg-options", "model.test_cfg.rcnn.score_thr=1.01"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "results of the whole dataset is empty" in log  # mmdet's own evaluation returned nothing
    assert "no detections: 6 COCO metrics written" in log
    metrics = json.loads((work / "metrics.json").read_text())["metrics"]
    assert metrics == expected_empty_ap(tiny_root / "coco" / "annotations" / "instances_val2017.json")
