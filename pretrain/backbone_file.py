"""A timm model from any pre-training output: work dir, ``epoch_<n>.pth``, ``backbone.pth`` or a published file.

The architecture comes from the ``meta`` block (``meta.arch``) or the run's config; the number of
classes from the classifier's weight in the state dict; the weights load strictly, so a file that does
not match its architecture is refused instead of half-loaded. The run's config is found in the
checkpoint (``config``) or as ``config.py`` beside the file (a work dir), else it is ``None``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import ModelError, build_model, resolve_arch
from .publish import PublishError, resolve_input, split_checkpoint


class BackboneFileError(ValueError):
    """A file that cannot be turned into a model; one line naming it."""


def read_config(path: str | Path) -> dict[str, Any]:
    """A pre-training config file as a plain dict (mmengine format, ``_base_`` resolved)."""
    from mmengine.config import Config

    if not Path(path).is_file():
        raise BackboneFileError(f"config file not found: {path}")
    return Config.fromfile(str(path)).to_dict()


def classifier_rows(model_name: str, state_dict: dict[str, torch.Tensor]) -> int:
    """Classes of the classifier stored in ``state_dict`` (0 when the file has none)."""
    probe = build_model(model_name, 0)
    name = probe.pretrained_cfg.get("classifier", "fc")
    weight = state_dict.get(f"{name}.weight")
    return int(weight.shape[0]) if weight is not None else 0


def load_backbone(path: str | Path, config: dict | None = None) -> tuple[nn.Module, dict, dict | None, Path]:
    """(model in eval mode on the CPU, meta, the run's config or ``None``, the file read)."""
    try:
        file = resolve_input(path)
        ckpt = torch.load(file, map_location="cpu", weights_only=False)
    except PublishError as exc:
        raise BackboneFileError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - an unreadable file is one clear line
        raise BackboneFileError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    try:
        state_dict, meta = split_checkpoint(ckpt, str(file))
    except PublishError as exc:
        raise BackboneFileError(str(exc)) from None
    if config is None:
        if isinstance(ckpt.get("config"), dict):
            config = ckpt["config"]
        elif (file.parent / "config.py").is_file():
            config = read_config(file.parent / "config.py")
    return model_from_state(state_dict, meta, config, str(file)), meta, config, file


def model_from_state(state_dict: dict[str, torch.Tensor], meta: dict, config: dict | None = None,
                     source: str = "checkpoint") -> nn.Module:
    """The timm model of ``meta.arch`` (or ``config.model.arch``) holding ``state_dict`` exactly; eval mode, CPU."""
    model_cfg = (config or {}).get("model") or {}
    arch = meta.get("arch") or model_cfg.get("arch")
    if not arch:
        raise BackboneFileError(f"{source}: no architecture (meta.arch) and no config to read model.arch from")
    try:
        name = resolve_arch(arch)
        model = build_model(name, classifier_rows(name, state_dict), **model_cfg.get("kwargs", {}))
    except ModelError as exc:
        raise BackboneFileError(f"{source}: {exc}") from None
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # a shape mismatch
        raise BackboneFileError(f"{source}: weights do not match timm's {name}: "
                                f"{str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else exc}") from None
    if result.missing_keys or result.unexpected_keys:
        bad = (result.missing_keys or result.unexpected_keys)[:3]
        raise BackboneFileError(f"{source}: weights do not match timm's {name} "
                                f"({len(result.missing_keys)} missing, {len(result.unexpected_keys)} unexpected, "
                                f"e.g. {', '.join(bad)})")
    return model.eval()
