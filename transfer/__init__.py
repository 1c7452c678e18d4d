"""Transfer of pre-trained timm backbones with OpenMMLab, in three layers:

- :mod:`transfer.mm` -- the OpenMMLab glue: our backbones registered in mmdet, mmseg and mmpose, verified
  checkpoint loading, compatibility fixes, the train/test CLI, the environment doctor;
- :mod:`transfer.study` -- the study: the pipeline (pre-train -> publish -> fine-tune -> test), the results
  tables, the plots and the report;
- :mod:`transfer.tinydata` -- the generator of the tiny COCO / Cityscapes datasets the tiny configs read.

:mod:`transfer.tasks` is the one list of transfer tasks (det, ins, pose, seg) that all three read.
``pretrain`` never imports ``transfer``; ``transfer.mm`` never imports ``transfer.study``.

Importing this package applies the compatibility fixes in :mod:`transfer.mm.compat` (mmengine on current
PyTorch) before anything from the toolboxes runs.
"""
from .mm import compat  # noqa: F401  (applies fixes on import)
