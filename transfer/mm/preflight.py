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
