"""``metrics.json``, the record a transfer run leaves for the results tables (the contract, its reader and
its atomic writer live in :mod:`dar_common.workdir`; the task names in :mod:`transfer.tasks`).

``metrics.json`` = ``{"task": "det"|"ins"|"pose"|"seg", "config": path, "backbone": path or null,
"backbone_meta": dict or null, "seed": fine-tuning seed or null, "arch": backbone architecture or null,
"metrics": {toolbox metric name: float}, "history": [{"iter", "epoch", "metrics"}, ...], "protocol":
"finetune"|"frozen"|null, "data_subset": null or {"fraction", "seed", "file", "count", "image_ids" | "files"}}``,
rewritten atomically after every validation and test. ``metrics`` holds the newest evaluation (the test's,
once tested); ``history`` every validation during fine-tuning in order (the fine-tuning curve: a pipeline's
``curve_points`` sets how many). ``backbone`` null is a randomly initialised backbone (the tables' scratch
row, grouped by ``arch`` and paired with the other rows by ``seed``); ``protocol`` is ``frozen`` when no
parameter of the backbone is trained (every stage frozen), read from the built model; ``data_subset`` is the
training subset a pipeline's ``data_fraction`` wrote (config key ``data_subset``, see
:mod:`transfer.study.subsets`).

The history survives a resume: the hook starts from the file's history, keeps the points at or before the
iteration the run resumed from (the later ones will be evaluated again), and evaluates the resumed
iteration itself when it was a validation point that the interrupted run checkpointed but did not evaluate
(mmengine saves a checkpoint before validating at the same iteration and does not validate it again).

Metrics never vanish: when a detector returns no detections at all, mmdet's ``CocoMetric`` logs "the
testing results of the whole dataset is empty" and returns nothing; the hook then writes what COCO
evaluation gives for an empty result set -- pycocotools' ``COCOeval`` run on the same ground truth with no
detections: 0 for every AP/AR where the val set has objects, -1 where it has none of that size.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from dar_common.workdir import read_metrics, write_metrics


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
                   metrics: Mapping[str, Any], seed: int | None = None, arch: str | None = None,
                   **extra: Any) -> dict:
    """The ``metrics.json`` record; ``extra``: ``history``, ``protocol``, ``data_subset`` where known."""
    return {"task": task, "config": str(config), "backbone": backbone,
            "backbone_meta": dict(backbone_meta) if backbone_meta else None,
            "seed": seed, "arch": arch, "metrics": clean_metrics(metrics), **extra}


def backbone_frozen(model) -> bool | None:
    """Whether no parameter of the built model's backbone is trainable (the "frozen" protocol); None when
    the model has no backbone with parameters."""
    backbone = getattr(getattr(model, "module", model), "backbone", None)
    params = list(backbone.parameters()) if backbone is not None else []
    return None if not params else not any(p.requires_grad for p in params)


def subset_record(spec: Mapping | None) -> dict | None:
    """What ``metrics.json`` says of a training subset (the config's ``data_subset`` dict): its fraction,
    seed, file, and the image ids (a COCO-style JSON subset) or files (a Cityscapes-style list)."""
    if not spec:
        return None
    path = Path(str(spec["file"]))
    if path.suffix == ".json":
        key, items = "image_ids", [int(img["id"]) for img in json.loads(path.read_text())["images"]]
    else:
        key, items = "files", [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    return {"fraction": float(spec["fraction"]), "seed": int(spec["seed"]), "file": str(path),
            "count": len(items), key: items}


def backbone_arch(model) -> str | None:
    """The timm architecture a built model's backbone has (``resnet18`` for a depth-18 ResNet, the timm
    name of a ``TimmFeatureBackbone``), read from the module; None when it cannot tell."""
    backbone = getattr(model, "module", model)  # DDP-wrapped or not
    backbone = getattr(backbone, "backbone", None)
    if getattr(backbone, "model_name", None):
        return str(backbone.model_name)
    depth = getattr(backbone, "depth", None)
    return f"resnet{depth}" if depth and "ResNet" in type(backbone).__name__ else None


# mmdet's CocoMetric: stats index of each metric item (mmdet.evaluation.metrics.coco_metric, 3.3).
_COCO_STATS = {"mAP": 0, "mAP_50": 1, "mAP_75": 2, "mAP_s": 3, "mAP_m": 4, "mAP_l": 5, "AR@100": 6, "AR@300": 7,
               "AR@1000": 8, "AR_s@1000": 9, "AR_m@1000": 10, "AR_l@1000": 11}
_COCO_ITEMS = {"bbox": ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l"),
               "proposal": ("AR@100", "AR@300", "AR@1000", "AR_s@1000", "AR_m@1000", "AR_l@1000")}


def empty_result_metrics(evaluator) -> dict[str, float]:
    """What each mmdet ``CocoMetric`` of ``evaluator`` reports for a result set without a single
    detection, under the names it would have used: pycocotools' COCOeval on its ground truth, images,
    categories, IoU thresholds and max-detection settings, with an empty detection set. Metrics that
    never evaluated (no ground truth loaded) are left out."""
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out: dict[str, float] = {}
    for metric in getattr(evaluator, "metrics", []):
        gt = getattr(metric, "_coco_api", None)  # loaded by its first evaluation
        if not isinstance(metric, CocoMetric) or gt is None:
            continue
        empty = COCO()
        empty.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                         "annotations": []}
        empty.createIndex()
        for name in metric.metrics:
            if name not in ("bbox", "segm", "proposal"):
                continue
            ev = COCOeval(gt, empty, "bbox" if name == "proposal" else name)
            ev.params.catIds = list(metric.cat_ids or gt.getCatIds())
            ev.params.imgIds = list(metric.img_ids or gt.getImgIds())
            ev.params.maxDets = list(metric.proposal_nums)
            ev.params.iouThrs = metric.iou_thrs
            with contextlib.redirect_stdout(io.StringIO()):  # its summary table; mmdet logs its own
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            items = metric.metric_items or _COCO_ITEMS.get(name, _COCO_ITEMS["bbox"])
            for item in items:
                key = item if name == "proposal" else f"{name}_{item}"
                out[f"{metric.prefix}/{key}" if metric.prefix else key] = float(f"{ev.stats[_COCO_STATS[item]]:.3f}")
    return out


class MetricsJsonHook(Hook):
    """Rewrite ``<work_dir>/metrics.json`` after each validation and test (main process only), keeping the
    history of validations (see the module docstring)."""

    priority = "LOW"

    def __init__(self, task: str, config: str, backbone: str | None, backbone_meta: Mapping | None):
        self.task, self.config, self.backbone, self.backbone_meta = task, config, backbone, backbone_meta
        self.history: list[dict] | None = None  # read from the work dir's file on first use

    def _history(self, runner) -> list[dict]:
        if self.history is None:
            old = read_metrics(runner.work_dir) or {}
            self.history = [h for h in old.get("history") or [] if isinstance(h, dict) and "iter" in h]
        return self.history

    def before_train(self, runner) -> None:
        """A fresh run starts a new history; a resumed one keeps the points up to where it resumed, and
        evaluates that iteration if it was due and the interrupted run did not get to it."""
        done = int(getattr(runner, "iter", 0) or 0)
        self.history = [h for h in self._history(runner) if int(h["iter"]) <= done] if done else []
        if done and self._val_due(runner) and not any(int(h["iter"]) == done for h in self.history):
            runner.logger.info(f"resumed at iteration {done}, a validation point the interrupted run did not "
                               "evaluate: validating it now")
            runner.val_loop.run()

    @staticmethod
    def _val_due(runner) -> bool:
        loop = getattr(runner, "train_loop", None)
        if getattr(runner, "val_loop", None) is None or loop is None or not getattr(loop, "val_interval", 0):
            return False
        by_epoch = hasattr(loop, "max_epochs") and not hasattr(loop, "max_iters")
        at = int(runner.epoch if by_epoch else runner.iter)
        end = int(loop.max_epochs if by_epoch else loop.max_iters)
        return at >= int(getattr(loop, "val_begin", 1)) and (at % int(loop.val_interval) == 0 or at == end)

    def _write(self, runner, metrics: Mapping[str, Any] | None, evaluator, validation: bool) -> None:
        if not is_main_process():
            return
        missing = {k: v for k, v in empty_result_metrics(evaluator).items() if k not in (metrics or {})}
        if missing:
            runner.logger.warning(f"no detections: {len(missing)} COCO metrics written as COCOeval gives them for an "
                                  "empty detection set (0, or -1 where the val set has no objects of that size)")
            metrics = {**(metrics or {}), **missing}
        if not metrics:
            return
        history = self._history(runner)
        if validation:
            point = {"iter": int(getattr(runner, "iter", 0) or 0), "epoch": int(getattr(runner, "epoch", 0) or 0),
                     "metrics": clean_metrics(metrics)}
            history[:] = [h for h in history if int(h["iter"]) != point["iter"]] + [point]
        seed = getattr(runner, "seed", None)
        model = getattr(runner, "model", None)
        frozen = backbone_frozen(model)
        cfg = getattr(runner, "cfg", None)
        write_metrics(Path(runner.work_dir), metrics_record(
            self.task, self.config, self.backbone, self.backbone_meta, metrics,
            seed=None if seed is None else int(seed), arch=backbone_arch(model), history=list(history),
            protocol=None if frozen is None else "frozen" if frozen else "finetune",
            data_subset=subset_record(cfg.get("data_subset") if cfg is not None else None)))

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics, _loop_evaluator(runner, "val_loop"), validation=True)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics, _loop_evaluator(runner, "test_loop"), validation=False)


def _loop_evaluator(runner, loop: str):
    """The evaluator of a built val/test loop, or None (a loop that is still a config dict has none)."""
    return getattr(getattr(runner, f"_{loop}", None), "evaluator", None)
