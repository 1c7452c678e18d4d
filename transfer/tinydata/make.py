"""The driver of the tiny datasets: :func:`generate` writes every set (``tools/make_tiny_data.py``).

The sets' drawing parts live in :mod:`.generator` (COCO instances / keypoints, Cityscapes) and
:mod:`.classification` (the shapes set, drawn with the generator's parts); this module only runs them.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .classification import SHAPE_CLASSES, shapes_classification
from .generator import (
    DETECTION_FILE,
    TINY_COCO_CLASSES,
    cityscapes_split,
    coco_instances,
    coco_keypoints,
    load_sources,
    person_detections,
    source_image_paths,
    write_json,
)

__all__ = ["generate", "readme_text"]


# -------------------------------------------------------------------------------------- driver
def generate(out: Path, seed: int = 0, num_train: int = 200, num_val: int = 50, size: int = 128,
             log: Callable[[str], None] = print, objects: tuple[int, int] = (1, 3),
             object_size: tuple[float, float] = (0.15, 0.3), persons: tuple[int, int] = (1, 2),
             classification: tuple[int, int] = (1350, 450)) -> dict:
    """Write all tiny datasets under ``out`` (must be empty or absent); return the meta dict.

    ``objects``: shapes per COCO instances image (min, max); ``object_size``: their radius range as
    fractions of the image's short side; ``persons``: mannequins per keypoints image (min, max);
    ``classification``: (train, val) images of the synthetic pre-training set in ``out/shapes``
    (:mod:`.classification`; (0, 0): none). The
    defaults give few, large objects at a low resolution: what a detector learns in a few hundred CPU
    iterations (docs/tiny_data.md has the measurements)."""
    out = Path(out)
    # Independent streams per (set, split): changing one set's size leaves the others' bytes alone.
    names = ["sources", "detections"] + [f"{n}/{s}" for n in ("instances", "person_keypoints", "cityscapes")
                                         for s in ("train", "val")] + ["shapes/train", "shapes/val"]
    seeds = np.random.SeedSequence(seed).spawn(len(names))
    rngs = {name: np.random.default_rng(s) for name, s in zip(names, seeds, strict=True)}
    source_paths = source_image_paths()
    sources = load_sources(source_paths, rngs["sources"])
    coco, counts = out / "coco", {}
    splits = {"train": num_train, "val": num_val}
    content = {"instances": dict(objects=tuple(objects), radius=tuple(object_size)),
               "person_keypoints": dict(persons=tuple(persons))}
    for name, make in (("instances", coco_instances), ("person_keypoints", coco_keypoints)):
        for split, n in splits.items():
            data = make(rngs[f"{name}/{split}"], sources, coco, split, n, size, **content[name])
            write_json(coco / "annotations" / f"{name}_{split}2017.json", data)
            counts[f"coco/{name}_{split}2017"] = {"images": len(data["images"]),
                                                   "annotations": len(data["annotations"])}
            log(f"coco {name} {split}2017: {len(data['images'])} images, {len(data['annotations'])} objects")
            if name == "person_keypoints" and split == "val":
                detections = person_detections(rngs["detections"], data["annotations"])
                write_json(coco / "person_detection_results" / DETECTION_FILE, detections)
                log(f"coco person_detection_results/{DETECTION_FILE}: {len(detections)} boxes")
    for split, n in splits.items():
        stems = cityscapes_split(rngs[f"cityscapes/{split}"], sources, out / "cityscapes", split, n, size)
        counts[f"cityscapes/{split}"] = {"images": len(stems)}
        log(f"cityscapes {split}: {len(stems)} images of {size}x{size // 2}")
    if any(classification):
        for split, n in zip(("train", "val"), classification, strict=True):
            per_class = shapes_classification(rngs[f"shapes/{split}"], sources, out / "shapes", split, n)
            counts[f"shapes/{split}"] = {"images": sum(per_class), "classes": len(SHAPE_CLASSES)}
            log(f"shapes {split} (synthetic classification, ImageFolder): {sum(per_class)} images of 32x32, "
                f"{len(SHAPE_CLASSES)} classes")
    meta = {"generator": "tools/make_tiny_data.py", "seed": seed, "num_train": num_train,
            "num_val": num_val, "size": size, "objects": list(objects), "object_size": list(object_size),
            "persons": list(persons), "classification": list(classification), "sources": [p.name for p in source_paths] or ["noise"],
            "coco_classes": list(TINY_COCO_CLASSES), "counts": counts}
    write_json(out / "meta.json", meta)
    (out / "README.txt").write_text(readme_text(meta))
    return meta


def readme_text(meta: dict) -> str:
    """A human-readable description of one generated folder."""
    lines = [f"Tiny synthetic datasets written by {meta['generator']} (seed {meta['seed']}, "
             f"size {meta['size']}, real-image sources: {', '.join(meta['sources'])}).", "",
             "coco/         COCO 2017 layout: annotations/instances_{train,val}2017.json (classes "
             + ", ".join(f"{i + 1}={n}" for i, n in enumerate(meta["coco_classes"])) + "),",
             "              annotations/person_keypoints_{train,val}2017.json (person, 17 keypoints),",
             f"              person_detection_results/{DETECTION_FILE}, images in train2017/, val2017/",
             "cityscapes/   leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and gtFine/{train,val}/<city>/",
             "              *_gtFine_labelTrainIds.png (0..18, 255 ignore) + *_gtFine_labelIds.png",
             "shapes/       SYNTHETIC classification set for pre-training (ImageFolder: {train,val}/<class>/*.png)",
             "", "Counts:"]
    lines += [f"  {k}: " + ", ".join(f"{n} {what}" for what, n in v.items()) for k, v in meta["counts"].items()]
    return "\n".join(lines) + "\n"
