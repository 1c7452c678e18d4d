"""A tiny synthetic classification set for pre-training, drawn like the tiny transfer sets: one shape of the
COCO instances' kinds in one of their three colour families, or none, on a crop of the same real photographs.

Why: scikit-learn's digits (grey 8x8 strokes) teach a ResNet nothing about colour or texture; fine-tuned on
the tiny COCO, a digits backbone detects worse than a randomly initialised one (box AP50 49.0 vs 58.5 in
the issue-12 measurements), so the demo's transfer rows could only ever say "pre-training hurts". A
ResNet-18 pre-trained on this set for the same 6 epochs reached box AP50 74.3 on the same fine-tuning.

Layout: ImageFolder, ``<root>/{train,val}/<class>/<index>.png`` (what ``data.type='imagefolder'`` reads),
ten classes: ``{circle,rectangle,triangle}_{red,green,blue}`` and ``none``, in equal numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .generator import (
    TINY_COCO_CLASSES,
    TINY_COCO_PALETTE,
    background,
    mask_to_coco,
    paint,
    shape_mask,
    tinted_texture,
    write_image,
)

COLOURS = ("red", "green", "blue")  # the names of TINY_COCO_PALETTE's colour families, in its order
SHAPE_CLASSES = tuple(f"{s}_{c}" for s in TINY_COCO_CLASSES for c in COLOURS) + ("none",)


def shapes_classification(rng: np.random.Generator, sources: list[np.ndarray], root: Path, split: str,
                          num_images: int, size: int = 32) -> list[int]:
    """Write ``num_images`` ``size``-px images into ``root/<split>/<class>/``, the classes in turn; return the
    count per class (in :data:`SHAPE_CLASSES` order). The shape fills 25-45 % of the side (radius), so a
    random-resized crop of half the image still shows it."""
    counts = [0] * len(SHAPE_CLASSES)
    for i in range(num_images):
        label = i % len(SHAPE_CLASSES)
        image = background(rng, sources, size, size)
        if SHAPE_CLASSES[label] != "none":
            shape, colour = divmod(label, len(COLOURS))
            ann = None
            while ann is None:  # a polygon always survives at these sizes; retry the rare degenerate draw
                ann = mask_to_coco(shape_mask(rng, shape + 1, size, size, (0.25, 0.45)))
            paint(image, ann["mask"], tinted_texture(rng, sources, size, size, TINY_COCO_PALETTE[colour]))
        write_image(root / split / SHAPE_CLASSES[label] / f"{i:05d}.png", image)
        counts[label] += 1
    return counts
