"""What a transfer run leaves in its work dir besides mmengine's own files: ``metrics.json`` (the shared
contract the results tables read) and ``git_rev.txt``.

``metrics.json`` = ``{"task": "det"|"ins"|"pose"|"seg", "config": path, "backbone": path or null,
"backbone_meta": dict or null, "metrics": {toolbox metric name: float}}``, rewritten atomically after every
validation and test, so it always holds the newest evaluation.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

METRICS_FILE = "metrics.json"


def task_of(cfg: Mapping) -> str:
    """det / ins / pose / seg from a config's scope and (for mmdet) whether masks are evaluated."""
    scope = cfg.get("default_scope")
    if scope == "mmseg":
        return "seg"
    if scope == "mmpose":
        return "pose"
    if scope == "mmdet":
        evaluators = cfg.get("test_evaluator") or cfg.get("val_evaluator") or {}
        evaluators = evaluators if isinstance(evaluators, list) else [evaluators]
        metrics = [m for e in evaluators for m in _as_list(e.get("metric", []))]
        return "ins" if "segm" in metrics else "det"
    raise ValueError(f"not a transfer config scope: {scope!r}")


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


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


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file beside ``path``, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def metrics_record(task: str, config: str, backbone: str | None, backbone_meta: Mapping | None,
                   metrics: Mapping[str, Any]) -> dict:
    return {"task": task, "config": str(config), "backbone": backbone,
            "backbone_meta": dict(backbone_meta) if backbone_meta else None,
            "metrics": clean_metrics(metrics)}


def git_revision(repo: Path | None = None) -> str:
    """The project's git commit (with ``-dirty`` for local changes), or ``unknown`` outside a checkout."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev or "unknown"


class MetricsJsonHook(Hook):
    """Rewrite ``<work_dir>/metrics.json`` after each validation and test (main process only)."""

    priority = "LOW"

    def __init__(self, task: str, config: str, backbone: str | None, backbone_meta: Mapping | None):
        self.task, self.config, self.backbone, self.backbone_meta = task, config, backbone, backbone_meta

    def _write(self, runner, metrics: Mapping[str, Any] | None) -> None:
        if not metrics or not is_main_process():
            return
        record = metrics_record(self.task, self.config, self.backbone, self.backbone_meta, metrics)
        write_json_atomic(Path(runner.work_dir) / METRICS_FILE, record)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics)
