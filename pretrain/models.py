"""Backbones: any ``timm.create_model`` name, randomly initialised, plus the papers' presets."""
from __future__ import annotations

import difflib
import inspect
import re
import sys
from collections.abc import Mapping
from typing import Any

import timm
import torch
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


_UNEXPECTED = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def check_model_kwargs(arch: str, kwargs: Any) -> None:
    """Raise a one-line :class:`ModelError` when timm's model ``arch`` does not take ``model.kwargs``.

    The model is built on the meta device (no memory, no initialisation work; a fraction of a second), so
    a misspelt name (``drop_pth_rate``) is refused before any data is read or anything is written, with a
    "did you mean" among the arguments of the class that refused it. Any other error there is confirmed
    by a real build (meta tensors cannot do everything an ``__init__`` may do) before it is reported.
    """
    if not isinstance(kwargs, Mapping):
        raise ModelError(f"model.kwargs must be a dict of timm.create_model arguments, got {kwargs!r}")
    if not kwargs:
        return
    name = resolve_arch(arch)
    try:
        with torch.device("meta"):
            timm.create_model(name, pretrained=False, num_classes=2, **kwargs)
        return
    except TypeError as exc:
        unexpected = _UNEXPECTED.search(str(exc))
        if unexpected is not None:
            raise ModelError(_unexpected_line(arch, name, *unexpected.groups())) from None
        if "multiple values for keyword argument" in str(exc):
            key = str(exc).rsplit(" ", 1)[-1].strip("'")
            raise ModelError(f"model.kwargs.{key} is set by the run, not by model.kwargs") from None
    except Exception:  # noqa: BLE001 - confirmed by the real build below
        pass
    try:
        timm.create_model(name, pretrained=False, num_classes=2, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model.kwargs {dict(kwargs)} rejected by timm's {name}: {str(exc).splitlines()[0]}") from None


def _unexpected_line(arch: str, name: str, owner: str, key: str) -> str:
    """``model.kwargs.<key> is not an argument of timm's <name> (<Class>; did you mean ...?)``."""
    module = sys.modules.get(timm.models.model_entrypoint(name).__module__)
    cls = getattr(module, owner, None)
    hint = ""
    if isinstance(cls, type):
        params = inspect.signature(cls.__init__).parameters.values()
        accepted = [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        close = difflib.get_close_matches(key, accepted, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
    return f"model.kwargs.{key} is not an argument of timm's {name} ({owner}{hint})"


def build_model(arch: str, num_classes: int, **kwargs) -> nn.Module:
    """A randomly initialised timm classifier; never downloads weights."""
    return timm.create_model(resolve_arch(arch), pretrained=False, num_classes=num_classes, **kwargs)
