"""Training subsets for a transfer entry's ``data_fraction``: which images, and the file the recipe reads.

One seeded permutation of a training set's images (sorted COCO image ids, or sorted Cityscapes-style file
stems) per ``subset_seed``; a fraction ``f`` keeps its first ``round(f * N)`` (at least one), so the subset
depends only on the data, the fraction and ``subset_seed`` -- the same for every method, pre-training seed
and fine-tuning seed -- and the subsets of one seed are nested (10% inside 50%), so that a smaller fraction
differs from a larger one only by the images it lacks.

The subset is written beside the report (``<report_dir>/subsets/<entry>/``) in the format the recipe's
dataset already reads: a COCO annotation file holding only the kept images and their annotations (mmdet's
and mmpose's ``CocoDataset`` ``ann_file``), or a list of file stems (mmseg's ``ann_file`` split file).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from dar_common.workdir import atomic_write_text

from .errors import PipelineError


def select(items: list[Any], fraction: float, seed: int) -> list[Any]:
    """The first ``round(fraction * len(items))`` (at least 1) of a permutation of the sorted ``items``
    seeded by ``seed`` alone, sorted again."""
    items = sorted(items)
    order = np.random.default_rng(seed).permutation(len(items))
    k = max(1, round(fraction * len(items)))
    return sorted(items[i] for i in order[:k])


# mmseg datasets' default image suffixes (class attributes, not config keys): what a split file's stems lack
IMG_SUFFIX = {"CityscapesDataset": "_leftImg8bit.png"}


def train_source(cfg: Any, data_root: str | None) -> dict[str, str]:
    """Where a transfer config's training images are listed: ``{"kind": "coco", "path": <annotation json>}``
    or ``{"kind": "files", "path": <image folder>, "suffix": <image suffix>}``, with the pipeline's
    ``--data-root`` in place of the config's ``data_root`` (as ``tools/train.py --data-root`` does)."""
    ds = (cfg.get("train_dataloader") or {}).get("dataset") or {}
    if "dataset" in ds or "datasets" in ds:
        raise PipelineError(f"data_fraction: the training dataset is a wrapper ({ds.get('type')}); the subset is "
                            "written for a plain COCO-style or Cityscapes-style dataset")
    root = str(ds.get("data_root") or cfg.get("data_root") or "")
    old = str(cfg.get("data_root") or "")
    if data_root and old and (root == old or root.startswith(old.rstrip("/") + "/")):
        root = str(data_root).rstrip("/") + "/" + root[len(old.rstrip("/")) + 1:]
    ann = ds.get("ann_file") or ""
    if str(ann).endswith(".json"):
        return {"kind": "coco", "path": str(ann if os.path.isabs(ann) else Path(root) / ann)}
    img = (ds.get("data_prefix") or {}).get("img_path")
    suffix = ds.get("img_suffix") or IMG_SUFFIX.get(str(ds.get("type")).split(".")[-1])
    if img is not None and not ann and suffix:
        return {"kind": "files", "path": str(Path(root) / img), "suffix": str(suffix)}
    raise PipelineError(f"data_fraction: cannot tell the training images of a {ds.get('type')} dataset "
                        "(neither a COCO annotation file nor an image folder without a split file)")


def subset_file(report_dir: Path, entry: str, source: dict[str, str], fraction: float, seed: int) -> Path:
    """Where the subset of ``entry`` at ``fraction`` is written (absolute: the recipe joins relative paths
    to its data root)."""
    ext = ".json" if source["kind"] == "coco" else ".txt"
    return (Path(report_dir) / "subsets" / entry / f"train_f{fraction * 100:g}_seed{seed}{ext}").absolute()


def write_subset(source: dict[str, str], fraction: float, seed: int, out: Path) -> list[Any]:
    """Write the subset file (atomically; unchanged content is not rewritten); return the kept image ids
    (COCO) or file stems (image folder)."""
    if source["kind"] == "coco":
        try:
            data = json.loads(Path(source["path"]).read_text())
        except (OSError, ValueError) as e:
            raise PipelineError(f"data_fraction: cannot read the training annotations {source['path']}: {e}") from None
        keep = select([int(img["id"]) for img in data["images"]], fraction, seed)
        kept = set(keep)
        text = json.dumps({**data, "images": [i for i in data["images"] if int(i["id"]) in kept],
                           "annotations": [a for a in data.get("annotations", []) if int(a["image_id"]) in kept]})
    else:
        folder, suffix = Path(source["path"]), source["suffix"]
        stems = [str(f.relative_to(folder))[: -len(suffix)] for f in folder.rglob(f"*{suffix}")]
        if not stems:
            raise PipelineError(f"data_fraction: no training images *{suffix} under {folder}")
        keep = select(stems, fraction, seed)
        text = "".join(f"{s}\n" for s in keep)
    if not (out.is_file() and out.read_text() == text):
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
    return keep
