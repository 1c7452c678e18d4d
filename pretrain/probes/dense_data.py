"""Images + per-pixel labels for the dense probe, read from a folder in the Cityscapes layout.

The embedded data is the tiny street-scene set that ``tools/make_tiny_data.py data/tiny`` writes
(``data/tiny/cityscapes``: 10 of the 19 Cityscapes classes occur); real data is any folder laid out so::

    ROOT/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png    uint8 class ids, 255 = ignore

``<split>`` is ``train`` (the head is fitted there) and ``val`` (mIoU). Any other data works once written
this way: one label PNG per image, values ``0 .. num_classes-1`` or 255. (``pretrain`` never imports
``transfer``: the probe reads the generator's files, it does not call the generator.)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

CITYSCAPES_CLASSES = 19
IGNORE = 255
_IMAGE_SUFFIX, _LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelTrainIds.png"


class ProbeDataError(ValueError):
    """Bad probe data input; the message is one line naming the problem."""


@dataclass
class DenseSet:
    images: list[np.ndarray]  # uint8 H x W x 3 (RGB)
    labels: list[np.ndarray]  # uint8 H x W, 255 = ignore
    num_classes: int
    source: str

    def __len__(self) -> int:
        return len(self.images)


def cityscapes_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """The (image, label) paths of ``root``'s ``split`` in the Cityscapes layout, sorted; checks that each exists."""
    root = Path(root)
    image_dir = root / "leftImg8bit" / split
    if not image_dir.is_dir():
        raise ProbeDataError(f"dense probe folder has no leftImg8bit/{split}: {image_dir}")
    pairs = []
    for image in sorted(image_dir.glob(f"*/*{_IMAGE_SUFFIX}")):
        label = root / "gtFine" / split / image.parent.name / image.name.replace(_IMAGE_SUFFIX, _LABEL_SUFFIX)
        if not label.is_file():
            raise ProbeDataError(f"no label for {image}: expected {label}")
        pairs.append((image, label))
    if not pairs:
        raise ProbeDataError(f"no *{_IMAGE_SUFFIX} images under {image_dir}/<city>/")
    return pairs


def read_pairs(pairs: list[tuple[Path, Path]], num_classes: int = CITYSCAPES_CLASSES,
               source: str = "") -> DenseSet:
    """Decode image/label pairs, checking that each label map matches its image and holds valid ids."""
    images, labels = [], []
    for image_path, label_path in pairs:
        try:
            image = np.asarray(Image.open(image_path).convert("RGB"))
            label = np.asarray(Image.open(label_path))
        except OSError as exc:
            raise ProbeDataError(f"unreadable image or label: {image_path} ({type(exc).__name__})") from exc
        if label.ndim != 2 or label.shape != image.shape[:2]:
            raise ProbeDataError(f"{label_path}: expected a single-channel {image.shape[1]}x{image.shape[0]} "
                                 f"label image, got shape {label.shape}")
        bad = np.setdiff1d(np.unique(label), np.r_[np.arange(num_classes), IGNORE])
        if bad.size:
            raise ProbeDataError(f"{label_path}: label value {int(bad[0])} is neither a class id "
                                 f"(0..{num_classes - 1}) nor {IGNORE} (ignore)")
        images.append(image)
        labels.append(label.astype(np.uint8))
    return DenseSet(images, labels, num_classes, source)


def cityscapes_folder(root: str | Path, split: str, num_images: int | None = None, seed: int = 0,
                      num_classes: int = CITYSCAPES_CLASSES) -> DenseSet:
    """``num_images`` (all if None; else a seeded uniform choice) image/label pairs of a Cityscapes-layout folder."""
    pairs = cityscapes_pairs(root, split)
    if num_images is not None and num_images < len(pairs):
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))[:num_images]
        pairs = [pairs[i] for i in sorted(order.tolist())]
    return read_pairs(pairs, num_classes, f"{root}/{split}")


def to_tensors(data: DenseSet, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, h, w) resized (bilinear, antialiased) and normalised with timm's ImageNet mean/std --
    what the pre-training transform does -- and labels (N, h, w) resized by nearest neighbour."""
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(3, 1, 1)
    images, labels = [], []
    for image, label in zip(data.images, data.labels, strict=True):
        x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        images.append((x - mean) / std)
        y = torch.from_numpy(label.copy())[None, None].float()
        labels.append(F.interpolate(y, size=size, mode="nearest")[0, 0].long())
    return torch.stack(images), torch.stack(labels)
