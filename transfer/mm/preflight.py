"""Checks and config edits the transfer CLI runs before building a Runner, so bad input fails with one
clear line before any long work: config scope, dataset files, and whether the backbone checkpoint fits.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from transfer.tasks import SCOPES

from .backbones import VerifiedPretrainedMixin, pretrained_checkpoint
from .checkpoint import BackboneCheckpointError

# Backbone types whose Pretrained checkpoint mmengine would load unverified; --backbone swaps them.
NATIVE_TO_VERIFIED = {"ResNet": "DarResNet"}
VERIFIED_TYPES = ("DarResNet", "TimmFeatureBackbone")


class PreflightError(ValueError):
    """Bad input found before training; the message is one line."""


def check_scope(cfg: Mapping, path: str) -> str:
    scope = cfg.get("default_scope")
    if scope not in SCOPES:
        raise PreflightError(f"config scope {scope!r} in {path} is not one of {', '.join(SCOPES)}")
    return scope


# ------------------------------------------------------------------------------- config edits
def set_backbone_checkpoint(cfg, path: str | None) -> None:
    """Point the config's backbone at ``path`` (None: random init), via a verified backbone class."""
    backbone = cfg.model.backbone
    kind = str(backbone.get("type", "")).split(".")[-1]
    if kind in NATIVE_TO_VERIFIED:
        backbone.type = NATIVE_TO_VERIFIED[kind]
    elif kind not in VERIFIED_TYPES:
        raise PreflightError(f"--backbone needs a backbone of type {' or '.join(VERIFIED_TYPES)} "
                             f"(or ResNet), this config has {backbone.get('type')!r}")
    backbone.init_cfg = dict(type="Pretrained", checkpoint=str(path)) if path else None
    if "pretrained" in cfg.model:
        cfg.model.pretrained = None  # mmseg refuses a model-level `pretrained` beside a backbone init_cfg


def replace_data_root(cfg, new_root: str) -> int:
    """Point the config at another copy of its dataset: every string starting with the config's
    ``data_root`` (e.g. ``data/tiny/coco/``) starts with ``new_root`` (e.g. ``/tmp/x/coco/``) instead, in
    datasets, evaluators and detection files alike. Returns how many strings changed."""
    root = cfg.get("data_root")
    if not root:
        raise PreflightError("--data-root: this config defines no top-level data_root to replace")
    old, new = root.rstrip("/") + "/", str(new_root).rstrip("/") + "/"
    count = 0

    def swap(node: Any) -> Any:
        nonlocal count
        if isinstance(node, str) and (node == old.rstrip("/") or node.startswith(old)):
            count += 1
            return new + node[len(old):] if node.startswith(old) else new.rstrip("/")
        if isinstance(node, Mapping):
            for key in list(node):
                node[key] = swap(node[key])
        elif isinstance(node, list):
            node[:] = [swap(v) for v in node]
        return node

    for key in list(cfg.keys()):
        cfg[key] = swap(cfg[key])
    return count


# -------------------------------------------------------------------------------- dataset files
def _datasets(node: Mapping) -> Iterator[Mapping]:
    """A dataloader's dataset and the ones nested in wrappers (RepeatDataset, ConcatDataset)."""
    if "dataset" in node:
        yield from _datasets(node["dataset"])
    for sub in node.get("datasets", []) or []:
        yield from _datasets(sub)
    if "dataset" not in node and "datasets" not in node:
        yield node


def required_paths(cfg: Mapping, loaders: tuple[str, ...]) -> list[tuple[str, Path]]:
    """``(what, path)`` for every annotation file and image/label folder that ``loaders`` and their
    evaluators read, resolved as the datasets resolve them (relative to ``data_root``)."""
    out: list[tuple[str, Path]] = []
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for ds in _datasets(cfg[loader]):
            root = Path(ds.get("data_root") or "")
            if ds.get("ann_file"):
                out.append((f"{loader} ann_file", root / ds["ann_file"]))
            for name, prefix in (ds.get("data_prefix") or {}).items():
                if prefix:
                    out.append((f"{loader} data_prefix.{name}", root / prefix))
            if ds.get("bbox_file"):  # mmpose reads it as given, not under data_root
                out.append((f"{loader} bbox_file", Path(ds["bbox_file"])))
        evaluator = cfg.get(loader.replace("_dataloader", "_evaluator"))
        for ev in evaluator if isinstance(evaluator, list) else [evaluator or {}]:
            if ev.get("ann_file") and not ev.get("format_only"):
                out.append((f"{loader.replace('_dataloader', '_evaluator')} ann_file", Path(ev["ann_file"])))
    return out


def check_data(cfg: Mapping, loaders: tuple[str, ...]) -> None:
    for what, path in required_paths(cfg, loaders):
        if not path.exists():
            raise PreflightError(f"dataset file not found: {path} ({what}); for the tiny configs run "
                                 f"`python tools/make_tiny_data.py data/tiny` or pass --data-root")


# ------------------------------------------------------------------------------ backbone fit
def build_backbone(cfg: Mapping, scope: str):
    """Build ``cfg.model.backbone`` alone in ``scope``'s registry (cheap next to the whole model)."""
    from mmengine.registry import DefaultScope

    models = importlib.import_module(f"{scope}.registry").MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(cfg["model"]["backbone"])


def check_backbone(cfg: Mapping, scope: str) -> str | None:
    """Verify that the backbone checkpoint in ``cfg`` exists, is a state dict and fits the backbone;
    return its path (None when the config trains from random init)."""
    path = pretrained_checkpoint(cfg["model"]["backbone"].get("init_cfg"))
    if path is None:
        return None
    if not Path(path).is_file():
        raise BackboneCheckpointError(f"backbone checkpoint not found: {path} "
                                      f"(pass --backbone PATH, or --backbone none for random init)")
    backbone = build_backbone(cfg, scope)
    if not isinstance(backbone, VerifiedPretrainedMixin):
        raise PreflightError(f"backbone {type(backbone).__name__} would load {path} through mmengine's "
                             f"unverified loader; use {' or '.join(VERIFIED_TYPES)} (or --backbone)")
    report = backbone.checkpoint_fit(path)
    if not report.ok:
        raise BackboneCheckpointError(
            f"backbone checkpoint {path} does not fit {backbone.describe()}: {report.summary()}")
    return path


# ------------------------------------------------------------------------------------ config values
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 1 else "must be a positive integer"


def _interval(value: Any) -> str | None:  # mmengine: -1 turns a hook's periodic action off
    return None if _is_int(value) and (value >= 1 or value == -1) else "must be a positive integer (or -1: never)"


def _non_negative_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 0 else "must be an integer >= 0"


def _positive_number(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")
    return None if ok else "must be a positive number"


def _non_negative_number(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")
    return None if ok else "must be a number >= 0"


def _folder(value: Any) -> str | None:
    """A path string; whether the files under it exist is :func:`check_data`'s (it names the file)."""
    return None if isinstance(value, str) and value else "must be a folder path (e.g. --data-root data/tiny/coco)"


# The keys a user sets most, each with its check; a dotted key absent from the config is not checked.
VALUE_CHECKS: dict[str, Any] = {
    "train_cfg.max_iters": _positive_int,
    "train_cfg.max_epochs": _positive_int,
    "train_cfg.val_interval": _positive_int,
    "train_cfg.val_begin": _non_negative_int,
    "optim_wrapper.optimizer.lr": _positive_number,
    "optim_wrapper.optimizer.weight_decay": _non_negative_number,
    "optim_wrapper.optimizer.momentum": _non_negative_number,
    "optim_wrapper.accumulative_counts": _positive_int,
    "default_hooks.checkpoint.interval": _interval,
    "default_hooks.checkpoint.max_keep_ckpts": lambda v: None if _is_int(v) else "must be an integer (-1: keep all)",
    "default_hooks.logger.interval": _positive_int,
    "randomness.seed": lambda v: None if v is None or _is_int(v) else "must be an integer (or None)",
    **{f"{loader}.{key}": check for loader in ("train_dataloader", "val_dataloader", "test_dataloader")
       for key, check in (("batch_size", _positive_int), ("num_workers", _non_negative_int))},
}
MISSING = object()


def _get(cfg: Mapping, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):  # an mmengine Config is not a Mapping; its sections are
        if not hasattr(node, "keys") or part not in node:
            return MISSING
        node = node[part]
    return node


def check_values(cfg: Mapping, options: Mapping | None = None) -> None:
    """One line for the first bad value among the keys users set most (:data:`VALUE_CHECKS`), the
    training loop's kind (``max_iters`` on an epoch loop), and the datasets' ``data_root`` paths; the
    line says whether the value came from ``--cfg-options``. Raises PreflightError."""
    options = options or {}

    def fail(key: str, value: Any, problem: str) -> None:
        where = " (from --cfg-options)" if key in options else ""
        raise PreflightError(f"{key}={value!r}{where} {problem}")

    for key, check in VALUE_CHECKS.items():
        value = _get(cfg, key)
        if value is not MISSING and (problem := check(value)) is not None:
            fail(key, value, problem)
    loop = cfg.get("train_cfg") or {}
    by_epoch = loop.get("by_epoch", "Epoch" in str(loop.get("type", "")))
    if by_epoch and "max_iters" in loop:
        fail("train_cfg.max_iters", loop["max_iters"], "is not a key of this config's epoch-based loop "
             "(set train_cfg.max_epochs)")
    if not by_epoch and loop and "max_epochs" in loop and "type" in loop:
        fail("train_cfg.max_epochs", loop["max_epochs"], "is not a key of this config's iteration-based loop "
             "(set train_cfg.max_iters)")
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if not isinstance(cfg.get(loader), Mapping):
            continue
        for ds in _datasets(cfg[loader]):
            root = ds.get("data_root")
            if root is not None and (problem := _folder(root)) is not None:
                fail(f"{loader}.dataset.data_root", root, problem)
