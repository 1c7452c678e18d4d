"""Backbones shared by the three toolboxes: verified weight loading and one timm feature backbone.

- :class:`VerifiedPretrainedMixin` makes a module's ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``
  load through :func:`transfer.mm.checkpoint.load_backbone_weights` (counts keys, fails on missing or
  mismatched ones) instead of mmengine's loader (which only warns). Mixed into each toolbox's own
  ``ResNet`` as ``DarResNet`` (see ``transfer/mm/mmdet.py``, ``mmseg.py``, ``mmpose.py``), so everything
  else about the upstream backbone stays as it is.
- :class:`TimmFeatureBackbone` wraps ``timm.create_model(name, features_only=True, ...)`` for every other
  timm architecture (DenseNet, MobileNet, RegNet, ...), registered in mmdet's, mmseg's and mmpose's MODELS.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import timm
from mmdet.registry import MODELS as DET_MODELS
from mmengine.model import BaseModule
from mmpose.registry import MODELS as POSE_MODELS
from mmseg.registry import MODELS as SEG_MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from .checkpoint import (
    MatchReport,
    apply_backbone_weights,
    check_fit,
    identity_keys,
    read_backbone_checkpoint,
    verify_backbone_weights,
)


def pretrained_checkpoint(init_cfg: Mapping | Sequence | None) -> str | None:
    """The checkpoint path of a ``type='Pretrained'`` entry in ``init_cfg`` (dict or list), else None."""
    cfgs = [init_cfg] if isinstance(init_cfg, Mapping) else list(init_cfg or [])
    paths = [c.get("checkpoint") for c in cfgs if isinstance(c, Mapping) and c.get("type") == "Pretrained"]
    return paths[0] if paths else None


class VerifiedPretrainedMixin:
    """``init_weights`` that runs the upstream initialisation without the Pretrained entry, then loads
    that checkpoint through the verified loader (last, so nothing overwrites it: mmpose's ResNet, for
    one, zero-initialises residual norms after its parent's init)."""

    # Names of the timm classifier modules to drop from a checkpoint aimed at this backbone.
    checkpoint_classifier: tuple[str, ...] = ("fc",)

    def checkpoint_keys(self, key: str) -> list[str]:
        """Target names a timm checkpoint key may take in this module (first present wins)."""
        return identity_keys(key)

    def checkpoint_fit(self, path: str | Path) -> MatchReport:
        """Match ``path`` against this module without loading it (for checks before training)."""
        state, meta = read_backbone_checkpoint(path)
        return check_fit(self.state_dict(), state, meta, self.checkpoint_classifier, self.checkpoint_keys)

    def init_weights(self) -> None:
        path = pretrained_checkpoint(self.init_cfg)
        if path is None or getattr(self, "_is_init", False):
            super().init_weights()
            return
        # Verify first, so a checkpoint that does not fit leaves the module untouched.
        report, meta = verify_backbone_weights(self, path, self.checkpoint_classifier, self.checkpoint_keys,
                                               self.describe())
        init_cfg, self.init_cfg = self.init_cfg, [c for c in _as_list(self.init_cfg)
                                                  if c.get("type") != "Pretrained"] or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        apply_backbone_weights(self, report, path, meta, self.describe())

    def describe(self) -> str:
        depth = getattr(self, "depth", None)
        return f"{type(self).__name__}(depth={depth})" if depth else type(self).__name__


def _as_list(init_cfg) -> list[dict]:
    return [init_cfg] if isinstance(init_cfg, Mapping) else list(init_cfg or [])


@DET_MODELS.register_module()
@SEG_MODELS.register_module()
@POSE_MODELS.register_module()
class TimmFeatureBackbone(VerifiedPretrainedMixin, BaseModule):
    """Any timm model as a multi-scale backbone: ``timm.create_model(name, features_only=True)``.

    Args:
        model_name: timm architecture, e.g. ``'densenet121'``, ``'regnety_016'``.
        out_indices: timm feature levels to return (``(1, 2, 3, 4)``: strides 4-32 for most CNNs).
        frozen_stages: freeze every module up to and including feature level ``frozen_stages`` (as
            mmdet's ResNet: 1 = stem + first stage for a timm resnet); -1 freezes nothing.
        norm_eval: keep BatchNorm layers in eval mode while training.
        output_stride: passed to timm for dilated models that support it (8 or 16).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads our weights, verified.
        **timm_kwargs: further keyword arguments for ``timm.create_model``.

    ``out_channels`` and ``out_strides`` come from timm's ``feature_info``.
    """

    def __init__(self, model_name: str, out_indices: Sequence[int] = (1, 2, 3, 4), frozen_stages: int = -1,
                 norm_eval: bool = False, output_stride: int | None = None, init_cfg=None, **timm_kwargs):
        super().__init__(init_cfg)
        if output_stride is not None:
            timm_kwargs["output_stride"] = output_stride
        self.model_name = model_name
        self.model = timm.create_model(model_name, pretrained=False, features_only=True,
                                       out_indices=tuple(out_indices), **timm_kwargs)
        info = self.model.feature_info
        self.out_indices = tuple(info.out_indices)
        self.out_channels: list[int] = info.channels()
        self.out_strides: list[int] = info.reduction()
        if not -1 <= frozen_stages <= max(self.out_indices):
            raise ValueError(f"frozen_stages={frozen_stages} outside -1..{max(self.out_indices)} "
                             f"(the last returned feature level of {model_name})")
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        cfg = timm.get_pretrained_cfg(model_name)
        classifier = cfg.classifier if cfg is not None and cfg.classifier else ()
        self.checkpoint_classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        self._freeze_stages()

    def checkpoint_keys(self, key: str) -> list[str]:
        # timm's feature wrappers rename modules: FeatureListNet flattens top-level Sequentials
        # ('features.conv0' -> 'features_conv0'), FeatureGetterNet nests the net under 'model.'.
        return [f"model.{c}" for c in (key, key.replace(".", "_", 1), f"model.{key}")]

    def describe(self) -> str:
        return f"TimmFeatureBackbone({self.model_name})"

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model(x))

    def _level_module(self, level: int) -> str:
        """Name, inside ``self.model``, of the module that produces feature level ``level``."""
        name = self.model.feature_info.info[level]["module"]
        names = dict(self.model.named_modules())
        for cand in (name, name.replace(".", "_", 1), f"model.{name}"):
            if cand in names:
                return cand
        raise KeyError(f"feature module {name!r} of {self.model_name} not found")

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        level = self._level_module(self.frozen_stages)
        modules = list(self.model.named_modules())  # pre-order = registration order = forward order here
        start = [n for n, _ in modules].index(level)
        end = start + len(list(modules[start][1].modules()))
        for name, module in modules[:end]:
            if name == "" or level.startswith(name + "."):
                continue  # an ancestor of the boundary: its later children stay trainable
            module.training = False
            for param in module.parameters(recurse=False):
                param.requires_grad = False

    def train(self, mode: bool = True) -> TimmFeatureBackbone:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

