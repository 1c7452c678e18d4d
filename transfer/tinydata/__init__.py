"""The tiny datasets: synthetic COCO 2017 (instances, keypoints) and Cityscapes in their exact on-disk
formats, written by ``tools/make_tiny_data.py`` and read by the ``*_tiny`` configs (docs/tiny_data.md),
and a synthetic classification set drawn the same way for pre-training (:mod:`.classification`).

May import: numpy, OpenCV, pycocotools. Nothing of OpenMMLab, :mod:`transfer.mm` or :mod:`transfer.study`:
the data is checked against the toolboxes' own dataset classes in the tests, not built with them.
"""
from .generator import (  # noqa: F401
    CITYSCAPES_LABEL_IDS,
    COCO_KEYPOINT_NAMES,
    COCO_SKELETON,
    DETECTION_FILE,
    TINY_COCO_CLASSES,
    cityscapes_scene,
    load_sources,
    source_image_paths,
)
from .make import generate  # noqa: F401
