"""The transfer axes of a pipeline entry as ``--cfg-options`` of its recipe: fine-tuning curve points,
data fraction (with its schedule), frozen backbone. What each option means: docs/pipeline.md.

- ``curve_points=K``: ``train_cfg.val_interval`` = schedule length / K (iterations, or epochs for an
  epoch-based loop), which must divide evenly; mmengine validates at every multiple and at the end, and
  ``metrics.json`` keeps each validation (:mod:`transfer.mm.metrics`). Only evaluations are added.
- ``frozen=True``: ``model.backbone.frozen_stages`` = every stage (a ResNet's ``num_stages``, a
  ``TimmFeatureBackbone``'s last feature level) and ``norm_eval=True``.
- ``data_fraction=f`` < 1: ``train_dataloader.dataset.ann_file`` = the subset file (:mod:`.subsets`) and
  ``data_subset`` (recorded in ``metrics.json``); with ``fraction_schedule='scaled'`` the schedule (loop
  length, scheduler positions in the loop's unit) is multiplied by f for an iteration-based loop, and with
  ``'iterations'`` (the default) an epoch-based loop's epochs are divided by f, so that either way the
  option says what happens to the number of optimisation steps.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from mmengine.config import Config

from .errors import PipelineError
from .spec import PipelineSpec, TransferSpec
from .subsets import subset_file, train_source

# Toolbox backbones that are ResNets of config key `depth` (timm's resnet<depth> has the same keys).
RESNET_TYPES = ("ResNet", "DarResNet", "ResNetV1c", "ResNetV1d", "mmdet.ResNet", "mmseg.ResNet", "mmpose.ResNet")


@lru_cache(maxsize=64)
def _recipe(config: str, options_json: str) -> dict[str, Any]:
    """The recipe's config (with the entry's options) as a dict, loaded once per pipeline run (``checks``
    has loaded it before, with one line for a config that does not load)."""
    if not Path(config).is_file():
        raise PipelineError(f"config file not found: {config}")
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(json.loads(options_json))
    return cfg.to_dict()


def recipe(spec: PipelineSpec, entry: TransferSpec) -> dict[str, Any]:
    return _recipe(entry.config, json.dumps({**spec.transfer_cfg_options, **entry.cfg_options}, sort_keys=True,
                                            default=str))


def _loop(cfg: dict[str, Any]) -> tuple[str, int]:
    """('iter'|'epoch', schedule length) of the recipe's training loop."""
    train = cfg.get("train_cfg") or {}
    if train.get("max_iters") is not None and (train.get("by_epoch") is not True):
        return "iter", int(train["max_iters"])
    if train.get("max_epochs") is not None:
        return "epoch", int(train["max_epochs"])
    raise PipelineError(f"cannot tell the training schedule of {cfg.get('filename', 'the recipe')} "
                        "(train_cfg has neither max_iters nor max_epochs)")


def schedule_factor(unit: str, fraction: float, schedule: str) -> float:
    """What the loop length is multiplied by: steps kept ('iterations') or scaled with the data ('scaled')."""
    if fraction == 1.0:
        return 1.0
    if unit == "iter":
        return fraction if schedule == "scaled" else 1.0
    return 1.0 if schedule == "scaled" else 1.0 / fraction


def _scaled(v: int | float, factor: float) -> int:
    return max(1, round(v * factor))


def schedule_options(cfg: dict[str, Any], factor: float) -> tuple[dict[str, Any], int]:
    """Options that multiply the loop length and the positions of the schedulers counted in the loop's
    unit by ``factor``; and the new length."""
    unit, length = _loop(cfg)
    if factor == 1.0:
        return {}, length
    new = _scaled(length, factor)
    opts: dict[str, Any] = {f"train_cfg.max_{'iters' if unit == 'iter' else 'epochs'}": new}
    scheds = cfg.get("param_scheduler") or []
    for i, sch in enumerate(scheds if isinstance(scheds, list) else [scheds]):
        if bool(sch.get("by_epoch", True)) != (unit == "epoch"):
            continue  # e.g. an iteration warm-up in an epoch-based recipe: it stays
        key = f"param_scheduler.{i}." if isinstance(scheds, list) else "param_scheduler."
        for name in ("begin", "end", "T_max"):
            if isinstance(sch.get(name), (int, float)) and sch[name] < 10**8:  # mmengine's INF stays
                opts[key + name] = _scaled(sch[name], factor) if sch[name] else 0
        if isinstance(sch.get("milestones"), list):
            opts[key + "milestones"] = [_scaled(m, factor) for m in sch["milestones"]]
    return opts, new


def frozen_options(cfg: dict[str, Any]) -> dict[str, Any]:
    bb = (cfg.get("model") or {}).get("backbone") or {}
    if bb.get("type") in RESNET_TYPES:
        stages = int(bb.get("num_stages", 4))
    elif bb.get("type") == "TimmFeatureBackbone":
        stages = max(bb.get("out_indices", (1, 2, 3, 4)))
    else:
        raise PipelineError(f"frozen=True: cannot freeze a {bb.get('type')} backbone (ResNet types or "
                            "TimmFeatureBackbone: frozen_stages)")
    return {"model.backbone.frozen_stages": stages, "model.backbone.norm_eval": True}


def axis_options(spec: PipelineSpec, entry: TransferSpec) -> dict[str, Any]:
    """The ``--cfg-options`` that put ``entry``'s curve points, data fraction and protocol into its recipe.
    Raises PipelineError (one line) for a recipe they do not fit."""
    if entry.curve_points is None and not entry.frozen and entry.data_fraction == 1.0:
        return {}
    cfg = recipe(spec, entry)
    unit, _ = _loop(cfg)
    opts, length = schedule_options(cfg, schedule_factor(unit, entry.data_fraction, entry.fraction_schedule))
    if entry.data_fraction != 1.0:
        source = train_source(cfg, spec.data_root(entry.name))
        path = str(subset_file(spec.report_dir, entry.entry_name, source, entry.data_fraction, spec.subset_seed))
        opts.update({"train_dataloader.dataset.ann_file": path, "data_subset.fraction": entry.data_fraction,
                     "data_subset.seed": spec.subset_seed, "data_subset.file": path})
        if (cfg["train_dataloader"]["dataset"].get("indices")) is not None:
            raise PipelineError(f"task {entry.name!r}: data_fraction with a recipe that itself keeps only the first "
                                f"{cfg['train_dataloader']['dataset']['indices']} images (dataset indices); set "
                                "train_dataloader.dataset.indices=None in the entry's cfg_options")
    if entry.curve_points is not None:
        k = entry.curve_points
        if any(cfg.get(key) is None for key in ("val_cfg", "val_dataloader", "val_evaluator")):
            raise PipelineError(f"task {entry.name!r}: curve_points={k} needs the recipe's validation, but its "
                                "val_cfg, val_dataloader or val_evaluator is None (e.g. in transfer_cfg_options)")
        if length % k:
            raise PipelineError(f"task {entry.name!r}: curve_points={k} does not divide the schedule's {length} "
                                f"{'iterations' if unit == 'iter' else 'epochs'} (evenly spaced points)")
        opts["train_cfg.val_interval"] = length // k
    if entry.frozen:
        opts.update(frozen_options(cfg))
    return opts


def subset_source(spec: PipelineSpec, entry: TransferSpec) -> tuple[dict[str, str], Path] | None:
    """(training-image source, subset file) of an entry with a data fraction, else None."""
    if entry.data_fraction == 1.0:
        return None
    source = train_source(recipe(spec, entry), spec.data_root(entry.name))
    return source, subset_file(spec.report_dir, entry.entry_name, source, entry.data_fraction, spec.subset_seed)
