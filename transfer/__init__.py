"""OpenMMLab glue: our timm backbones in mmdet, mmseg and mmpose.

Importing this package applies the compatibility fixes in :mod:`transfer.compat` (mmengine on current
PyTorch) before anything from the toolboxes runs.
"""
from . import compat  # noqa: F401  (applies fixes on import)
