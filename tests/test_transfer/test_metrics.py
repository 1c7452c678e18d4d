"""metrics.json: metric cleaning, and the hook that rewrites the file after val/test."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import torch

from dar_common.workdir import METRICS_FILE
from transfer.mm.metrics import MetricsJsonHook, clean_metrics


def test_clean_metrics_keeps_numbers_as_plain_floats():
    got = clean_metrics({"mIoU": np.float32(23.24), "coco/AP": np.float64(0.1), "t": torch.tensor(0.5),
                         "name": "x", "nan": float("nan"), "n": 3})
    assert got == {"mIoU": 23.24, "coco/AP": 0.1, "t": 0.5, "nan": None, "n": 3.0}
    json.dumps(got)


def test_hook_rewrites_metrics_json_after_val_and_test(tmp_path):
    hook = MetricsJsonHook("seg", "configs/x.py", "b.pth", {"arch": "resnet50"})
    runner = SimpleNamespace(work_dir=str(tmp_path))
    hook.after_val_epoch(runner, {"mIoU": np.float32(1.5)})
    first = json.loads((tmp_path / METRICS_FILE).read_text())
    point = {"iter": 0, "epoch": 0, "metrics": {"mIoU": 1.5}}  # a runner that never trained is at iteration 0
    assert first == {"task": "seg", "config": "configs/x.py", "backbone": "b.pth",
                     "backbone_meta": {"arch": "resnet50"}, "seed": None, "arch": None, "metrics": {"mIoU": 1.5},
                     "history": [point], "protocol": None, "data_subset": None}
    hook.after_test_epoch(runner, {"mIoU": 2.0})
    assert json.loads((tmp_path / METRICS_FILE).read_text())["metrics"] == {"mIoU": 2.0}
    # a test in another process (a new hook) keeps the validations' history
    MetricsJsonHook("seg", "configs/x.py", "b.pth", None).after_test_epoch(runner, {"mIoU": 3.0})
    assert json.loads((tmp_path / METRICS_FILE).read_text())["history"] == [point]
    hook.after_val_epoch(runner, {})  # nothing evaluated by a non-COCO metric: the last result stays
    assert json.loads((tmp_path / METRICS_FILE).read_text())["metrics"] == {"mIoU": 3.0}
    assert [p.name for p in tmp_path.iterdir()] == [METRICS_FILE]  # no temp file left behind
