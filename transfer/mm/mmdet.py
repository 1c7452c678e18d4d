"""mmdet glue: ``DarResNet`` (mmdet's own ResNet with verified weight loading) and the shared
``TimmFeatureBackbone``, registered in mmdet's MODELS. Configs import it with
``custom_imports = dict(imports=['transfer.mm.mmdet'], allow_failed_imports=False)``.
"""
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS

from . import backbones  # noqa: F401  (registers TimmFeatureBackbone in all three toolboxes)
from .backbones import VerifiedPretrainedMixin


@MODELS.register_module()
class DarResNet(VerifiedPretrainedMixin, ResNet):
    """mmdet's ``ResNet`` unchanged (stem, ``frozen_stages``, ``norm_eval``, ``style``, dilation);
    only ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` loads PATH through the verified loader.
    timm's ResNet keys (``conv1``, ``bn1``, ``layer1.0.downsample.0``, ...) equal mmdet's."""
