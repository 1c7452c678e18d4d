"""The synthetic pre-training set (``shapes/``, ImageFolder): classes in equal numbers, labels that follow
from the pixels, and read by pre-training's own ``imagefolder`` data."""
from __future__ import annotations

import numpy as np

from pretrain.data import build_dataset
from transfer.tinydata import generate
from transfer.tinydata.classification import COLOURS, SHAPE_CLASSES
from transfer.tinydata.generator import TINY_COCO_PALETTE


def test_shapes_set_is_balanced_labelled_by_its_pixels_and_read_by_pretraining(tmp_path):
    root = tmp_path / "tiny"
    meta = generate(root, num_train=1, num_val=1, classification=(100, 10), log=lambda _msg: None)
    assert meta["counts"]["shapes/train"] == {"images": 100, "classes": 10}
    train = build_dataset({"type": "imagefolder", "root": str(root / "shapes"), "img_size": 32}, "train")
    base = train.base
    assert base.classes == sorted(SHAPE_CLASSES) and np.bincount(base.targets).tolist() == [10] * 10
    mean = {c: np.zeros(3) for c in base.classes}
    for path, target in base.samples:
        image = np.asarray(base.loader(path), dtype=np.float64)
        assert image.shape == (32, 32, 3)
        mean[base.classes[target]] += image.mean(axis=(0, 1)) / 10
    for name in SHAPE_CLASSES[:-1]:
        # the label follows from the pixels: against the shapeless class, the class's colour family dominates
        family = TINY_COCO_PALETTE[COLOURS.index(name.split("_")[1])]
        assert int(np.argmax(mean[name] - mean["none"])) == int(np.argmax(family)), (name, mean[name] - mean["none"])
    val = build_dataset({"type": "imagefolder", "root": str(root / "shapes"), "img_size": 32}, "val")
    assert len(val) == 10
