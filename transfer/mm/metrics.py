"""``metrics.json``, the record a transfer run leaves for the results tables (the contract, its reader and
its atomic writer live in :mod:`pretrain.workdir`; the task names in :mod:`transfer.tasks`).

``metrics.json`` = ``{"task": "det"|"ins"|"pose"|"seg", "config": path, "backbone": path or null,
"backbone_meta": dict or null, "metrics": {toolbox metric name: float}}``, rewritten atomically after every
validation and test, so it always holds the newest evaluation.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from pretrain.workdir import write_metrics


def clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Toolbox metrics as plain floats (NumPy scalars, tensors), keeping only numeric ones; NaN -> None."""
    out = {}
    for key, value in metrics.items():
        try:
            # str() of a float32 is its shortest round-trip form: 23.24, not 23.239999771118164
            number = float(str(value)) if isinstance(value, np.floating) else float(value)
        except (TypeError, ValueError):
            continue
        out[str(key)] = None if math.isnan(number) else number
    return out


def metrics_record(task: str, config: str, backbone: str | None, backbone_meta: Mapping | None,
                   metrics: Mapping[str, Any]) -> dict:
    return {"task": task, "config": str(config), "backbone": backbone,
            "backbone_meta": dict(backbone_meta) if backbone_meta else None,
            "metrics": clean_metrics(metrics)}


class MetricsJsonHook(Hook):
    """Rewrite ``<work_dir>/metrics.json`` after each validation and test (main process only)."""

    priority = "LOW"

    def __init__(self, task: str, config: str, backbone: str | None, backbone_meta: Mapping | None):
        self.task, self.config, self.backbone, self.backbone_meta = task, config, backbone, backbone_meta

    def _write(self, runner, metrics: Mapping[str, Any] | None) -> None:
        if not metrics or not is_main_process():
            return
        write_metrics(Path(runner.work_dir), metrics_record(self.task, self.config, self.backbone,
                                                            self.backbone_meta, metrics))

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics)
