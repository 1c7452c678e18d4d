"""Backbones: any ``timm.create_model`` name, randomly initialised, plus the papers' presets."""
from __future__ import annotations

import difflib

import timm
import torch.nn as nn

# The backbones of the reproduced papers, by the name the papers use -> timm's name.
PRESETS = {
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "resnet152": "resnet152",
    "densenet121": "densenet121",
    "densenet169": "densenet169",
    "mobilenetv1": "mobilenetv1_100",
}


class ModelError(ValueError):
    """Unknown model name; the message is one line."""


def resolve_arch(arch: str) -> str:
    """Map a preset to its timm name; check that timm knows the name (suggesting close ones if not)."""
    name = PRESETS.get(arch, arch)
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelError(f"unknown timm model name {arch!r}{hint}")
    return name


def build_model(arch: str, num_classes: int, **kwargs) -> nn.Module:
    """A randomly initialised timm classifier; never downloads weights."""
    return timm.create_model(resolve_arch(arch), pretrained=False, num_classes=num_classes, **kwargs)
