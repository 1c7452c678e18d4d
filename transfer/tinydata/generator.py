"""Tiny synthetic datasets in the exact on-disk formats of COCO 2017 and Cityscapes.

Objects are drawn on crops of photographs that ship with installed packages (scikit-learn's
``china.jpg``/``flower.jpg``, matplotlib's ``grace_hopper.jpg``; smooth noise only if none is found), so
the toolboxes' own dataset classes read the result unchanged and every label follows from the pixels:

- COCO instances: three shape classes (:data:`TINY_COCO_CLASSES`), each in its own colour family. A mask is
  drawn, turned into COCO polygons, rasterised back with pycocotools, and the object is painted exactly on
  that rasterised mask, so pixels, ``segmentation``, ``area`` and ``bbox`` agree.
- COCO keypoints: mannequins facing the camera whose 17 joints are coloured blobs (one colour per joint
  type, the same on both sides: left/right follows from the layout, so flip augmentation stays consistent),
  plus the person-box detection file that mmpose's top-down testing reads.
- Cityscapes: street scenes painted in the Cityscapes palette over real-image textures, with
  ``labelTrainIds`` (0..18, 255 = ignore for the ego-vehicle hood) and ``labelIds``.

Everything is drawn from explicit ``numpy.random.Generator`` s: the same seed gives the same bytes.
"""
from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils

TINY_COCO_CLASSES = ("circle", "rectangle", "triangle")
TINY_COCO_PALETTE = [(220, 40, 40), (40, 170, 40), (40, 70, 230)]  # RGB colour family per class

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle")
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
                 [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
# One colour per joint type (nose, eye, ear, shoulder, elbow, wrist, hip, knee, ankle), shared by L/R.
_JOINT_TYPE = (0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8)
_JOINT_COLORS = [(255, 0, 0), (255, 255, 0), (255, 128, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255),
                 (255, 0, 255), (128, 0, 255), (255, 255, 255)]

# Cityscapes train id -> label id (cityscapesScripts' labels.py); ignore (255) is written as label id 1
# ("ego vehicle"), the only ignored region drawn here.
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
CITYSCAPES_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau")}
_CS = dict(road=0, sidewalk=1, building=2, pole=5, sign=7, vegetation=8, terrain=9, sky=10, person=11,
           car=13, ignore=255)
_CS_COLORS = {0: (128, 64, 128), 1: (244, 35, 232), 2: (70, 70, 70), 5: (153, 153, 153), 7: (220, 220, 0),
              8: (107, 142, 35), 9: (152, 251, 152), 10: (70, 130, 180), 11: (220, 20, 60), 13: (0, 0, 142),
              255: (25, 25, 25)}

# Image id ranges keep the four COCO image sets apart inside train2017/ and val2017/.
_ID_BASE = {("instances", "train"): 1, ("instances", "val"): 100001,
            ("person_keypoints", "train"): 200001, ("person_keypoints", "val"): 300001}
_COCO_INFO = {"description": "dar-transfer tiny synthetic COCO", "version": "1.0", "year": 2017,
              "contributor": "tools/make_tiny_data.py", "date_created": "2017/09/01"}
_COCO_LICENSES = [{"id": 1, "name": "Same as the source images (BSD-3 / matplotlib license)", "url": ""}]
DETECTION_FILE = "COCO_val2017_detections_AP_H_56_person.json"
# Limb and neck width of a mannequin, as a fraction of its height: a full figure, so that its mask area
# (what COCO's keypoint similarity scales the joint errors by) is ~35 % of its box (0.06 gave ~28 %).
LIMB_WIDTH = 0.1


# ----------------------------------------------------------------------------------------- pixels
def source_image_paths() -> list[Path]:
    """The real photographs shipped with scikit-learn and matplotlib (found without importing them)."""
    candidates = [("sklearn", "datasets/images/china.jpg"), ("sklearn", "datasets/images/flower.jpg"),
                  ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")]
    paths = []
    for package, rel in candidates:
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            if (Path(root) / rel).is_file():
                paths.append(Path(root) / rel)
    return paths


def load_sources(paths: list[Path], rng: np.random.Generator) -> list[np.ndarray]:
    """RGB uint8 images from ``paths``; two smooth-noise images when none can be read."""
    images = [cv2.imread(str(p))[:, :, ::-1].copy() for p in paths]
    if not images:
        small = rng.integers(0, 256, size=(2, 24, 32, 3), dtype=np.uint8)
        images = [cv2.resize(s, (640, 480), interpolation=cv2.INTER_CUBIC) for s in small]
    return images


def random_crop(rng: np.random.Generator, sources: list[np.ndarray], h: int, w: int) -> np.ndarray:
    """A random crop (40-100 % of the largest fitting one), randomly flipped, resized to ``h x w``."""
    src = sources[rng.integers(len(sources))]
    fit = min(src.shape[0] / h, src.shape[1] / w)
    ch, cw = (max(1, int(d * fit * rng.uniform(0.4, 1.0))) for d in (h, w))
    y, x = rng.integers(0, src.shape[0] - ch + 1), rng.integers(0, src.shape[1] - cw + 1)
    crop = cv2.resize(src[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def tinted_texture(rng: np.random.Generator, sources: list[np.ndarray], h: int, w: int,
                   color: tuple[int, int, int], jitter: float = 15.0) -> np.ndarray:
    """A real-image texture (grey levels mapped to 55-100 %) in a jittered ``color``: float RGB."""
    gray = cv2.cvtColor(random_crop(rng, sources, h, w), cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = 0.55 + 0.45 * (gray - gray.min()) / max(float(np.ptp(gray)), 1.0)
    tint = np.clip(np.asarray(color, np.float32) + rng.normal(0.0, jitter, 3), 0, 255)
    return gray[:, :, None] * tint


def background(rng: np.random.Generator, sources: list[np.ndarray], h: int, w: int) -> np.ndarray:
    """A real-image crop, half desaturated so saturated objects stand out: float RGB."""
    crop = random_crop(rng, sources, h, w).astype(np.float32)
    return 0.5 * crop + 0.5 * crop.mean(axis=2, keepdims=True)


def paint(image: np.ndarray, mask: np.ndarray, layer: np.ndarray) -> None:
    """Copy ``layer`` into ``image`` where ``mask`` is set (in place)."""
    image[mask] = layer[mask]


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB image (JPEG quality 95 or PNG, by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8)[:, :, ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"could not write {path}")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, separators=(",", ":")))


# ------------------------------------------------------------------------------------ annotations
def mask_to_coco(mask: np.ndarray) -> dict | None:
    """COCO polygons for a binary mask, with the mask pycocotools rasterises from them.

    Returns {segmentation, area, bbox, mask} where ``area``/``bbox`` describe that rasterised ``mask``
    (what every COCO reader sees), or None when no polygon survives.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = [[float(v) for v in c.ravel()] for c in contours if len(c) >= 3]
    if not polygons:
        return None
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, *mask.shape))
    area = float(mask_utils.area(rle))
    if area < 4:
        return None
    return {"segmentation": polygons, "area": area,
            "bbox": [float(v) for v in mask_utils.toBbox(rle)], "mask": mask_utils.decode(rle).astype(bool)}


def coco_image_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """(h, w) with long side ``size`` and 4:3 aspect, landscape or portrait at random."""
    short = size * 3 // 4
    return (short, size) if rng.random() < 0.5 else (size, short)


def coco_skeleton_category() -> dict:
    return {"supercategory": "person", "id": 1, "name": "person",
            "keypoints": list(COCO_KEYPOINT_NAMES), "skeleton": COCO_SKELETON}


def coco_json(images: list[dict], annotations: list[dict], categories: list[dict]) -> dict:
    return {"info": _COCO_INFO, "licenses": _COCO_LICENSES, "images": images,
            "annotations": annotations, "categories": categories}


# ------------------------------------------------------------------------------ COCO instances
def shape_mask(rng: np.random.Generator, category_id: int, h: int, w: int,
               radius: tuple[float, float] = (0.15, 0.3)) -> np.ndarray:
    """A filled circle-ish ellipse (1), rotated rectangle (2) or triangle (3) at a random place, its radius
    drawn from ``radius`` (fractions of the short side)."""
    r = rng.uniform(*radius) * min(h, w)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    mask = np.zeros((h, w), np.uint8)
    if category_id == 1:
        axes = (round(r), round(r * rng.uniform(0.75, 1.0)))
        cv2.ellipse(mask, (round(cx), round(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif category_id == 2:
        box = ((cx, cy), (1.6 * r, 1.6 * r * rng.uniform(0.6, 1.0)), float(rng.uniform(-30, 30)))
        cv2.fillPoly(mask, [np.round(cv2.boxPoints(box)).astype(np.int32)], 1)
    else:
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2]) + rng.uniform(-0.2, 0.2, 3)
        points = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def free(occupied: np.ndarray, mask: np.ndarray, margin: int = 3) -> bool:
    """True when ``mask`` keeps ``margin`` pixels away from everything already placed."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)).astype(bool)
    return not (grown & occupied).any()


def shapes_image(rng: np.random.Generator, sources: list[np.ndarray], h: int, w: int,
                 objects: tuple[int, int] = (1, 3), radius: tuple[float, float] = (0.15, 0.3)
                 ) -> tuple[np.ndarray, list[dict]]:
    """A real-image background with ``objects[0]..objects[1]`` non-touching shapes of ``radius``; (RGB,
    annotations). Fewer shapes may fit when they are large."""
    image = background(rng, sources, h, w)
    occupied = np.zeros((h, w), bool)
    placed = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        for _try in range(20):
            category_id = int(rng.integers(1, len(TINY_COCO_CLASSES) + 1))
            ann = mask_to_coco(shape_mask(rng, category_id, h, w, radius))
            if ann is not None and free(occupied, ann["mask"]):
                break
        else:
            continue
        occupied |= ann["mask"]
        paint(image, ann.pop("mask"), tinted_texture(rng, sources, h, w, TINY_COCO_PALETTE[category_id - 1]))
        placed.append({"category_id": category_id, **ann})
    return image, placed


def coco_images(rng: np.random.Generator, sources: list[np.ndarray], root: Path, split: str, num_images: int,
                size: int, first_id: int, draw: Callable) -> tuple[list[dict], list[dict]]:
    """Write ``num_images`` images that ``draw(rng, sources, h, w) -> (image, objects)`` paints into
    ``root/<split>2017`` (ids from ``first_id``); return their COCO ``images`` and ``annotations``."""
    images, annotations = [], []
    for i in range(num_images):
        h, w = coco_image_size(rng, size)
        image, objects = draw(rng, sources, h, w)
        image_id = first_id + i
        file_name = f"{image_id:012d}.jpg"
        write_image(root / f"{split}2017" / file_name, image)
        images.append({"license": 1, "file_name": file_name, "height": h, "width": w, "id": image_id})
        for obj in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0, **obj})
    return images, annotations


def coco_instances(rng: np.random.Generator, sources: list[np.ndarray], root: Path, split: str,
                   num_images: int, size: int, objects: tuple[int, int] = (1, 3),
                   radius: tuple[float, float] = (0.15, 0.3)) -> dict:
    """Write ``num_images`` shape images into ``root/<split>2017`` and return the instances json."""
    images, annotations = coco_images(rng, sources, root, split, num_images, size, _ID_BASE[("instances", split)],
                                      functools.partial(shapes_image, objects=objects, radius=radius))
    categories = [{"supercategory": "shape", "id": i + 1, "name": n} for i, n in enumerate(TINY_COCO_CLASSES)]
    return coco_json(images, annotations, categories)


# ------------------------------------------------------------------------------ COCO keypoints
def mannequin_joints(rng: np.random.Generator, height: float, center_x: float, top_y: float
                     ) -> tuple[np.ndarray, tuple[float, float]]:
    """17 integer COCO joints (x, y) and the head centre of a random pose facing the camera (its left on
    the image's right), standing ``height`` tall with its body axis at ``center_x`` and head top at ``top_y``."""
    def limb(start, angle, length):
        return start + length * np.array([np.sin(angle), np.cos(angle)])

    H = height
    head = np.array([0.0, 0.09 * H])
    face = {0: (0.0, 0.03), 1: (0.035, -0.01), 2: (-0.035, -0.01), 3: (0.075, 0.0), 4: (-0.075, 0.0)}
    joints = np.zeros((17, 2))
    for k, (dx, dy) in face.items():
        joints[k] = head + H * np.array([dx, dy])
    for side, (s, e, wr, hp, kn, an) in ((1, (5, 7, 9, 11, 13, 15)), (-1, (6, 8, 10, 12, 14, 16))):
        joints[s] = (side * 0.12 * H, 0.22 * H)
        joints[hp] = (side * 0.075 * H, 0.53 * H)
        arm = side * rng.uniform(0.1, 2.6)  # from hanging down to raised above the shoulder
        joints[e] = limb(joints[s], arm, 0.16 * H)
        joints[wr] = limb(joints[e], arm + side * rng.uniform(0.0, 1.5), 0.14 * H)
        leg = side * rng.uniform(0.0, 0.45)
        joints[kn] = limb(joints[hp], leg, 0.22 * H)
        joints[an] = limb(joints[kn], leg - side * rng.uniform(0.0, 0.5), 0.21 * H)
    lean = rng.uniform(-0.15, 0.15)  # rotate the whole figure about the pelvis
    rot = np.array([[np.cos(lean), -np.sin(lean)], [np.sin(lean), np.cos(lean)]])
    pelvis = (joints[11] + joints[12]) / 2
    offset = np.array([center_x, top_y])
    joints = (joints - pelvis) @ rot.T + pelvis + offset
    head = (head - pelvis) @ rot.T + pelvis + offset
    return np.round(joints), (float(head[0]), float(head[1]))


def draw_mannequin(image: np.ndarray, body: np.ndarray, joints: np.ndarray, head: tuple[float, float],
                   height: float) -> np.ndarray:
    """Paint a mannequin (textured ``body`` layer, coloured joint blobs) in place; return its mask."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    pt = [tuple(int(v) for v in j) for j in joints]
    thick = max(2, round(LIMB_WIDTH * height))
    cv2.fillPoly(mask, [np.array([pt[5], pt[6], pt[12], pt[11]], np.int32)], 1)
    for a, b in ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16)):
        cv2.line(mask, pt[a], pt[b], 1, thick)
    cv2.line(mask, (round(head[0]), round(head[1])), ((pt[5][0] + pt[6][0]) // 2, pt[5][1]), 1, thick)
    cv2.circle(mask, (round(head[0]), round(head[1])), round(0.085 * height), 1, -1)
    paint(image, mask.astype(bool), body)
    for k, p in enumerate(pt):
        radius = max(2, round((0.018 if k < 5 else 0.028) * height))
        cv2.circle(image, p, radius, _JOINT_COLORS[_JOINT_TYPE[k]], -1)
        cv2.circle(mask, p, radius, 1, -1)
    return mask.astype(bool)


def persons_image(rng: np.random.Generator, sources: list[np.ndarray], h: int, w: int,
                  persons: tuple[int, int] = (1, 2)) -> tuple[np.ndarray, list[dict]]:
    """A real-image background with ``persons[0]..persons[1]`` separate mannequins; (RGB, annotations)."""
    image = background(rng, sources, h, w)
    occupied = np.zeros((h, w), bool)
    found = []
    for _ in range(int(rng.integers(persons[0], persons[1] + 1))):
        for _try in range(20):
            height = rng.uniform(0.45, 0.8) * h
            joints, head = mannequin_joints(rng, height, rng.uniform(0.2 * height, w - 0.2 * height),
                                            rng.uniform(0.02 * h, h - height * 1.02))
            margin = 0.05 * height
            inside = (joints.min(0) >= margin).all() and (joints[:, 0].max() < w - margin) \
                and (joints[:, 1].max() < h - margin)
            trial = image.copy()
            mask = draw_mannequin(trial, tinted_texture(rng, sources, h, w, (130, 120, 110), 30.0),
                                  joints, head, height) if inside else None
            ann = mask_to_coco(mask) if mask is not None and free(occupied, mask, margin=4) else None
            if ann is not None:
                break
        else:
            continue
        image, occupied = trial, occupied | mask
        keypoints = np.concatenate([joints, np.full((17, 1), 2)], axis=1).astype(int).ravel().tolist()
        found.append({"category_id": 1, "num_keypoints": 17, "keypoints": keypoints,
                      "segmentation": ann["segmentation"], "area": ann["area"], "bbox": ann["bbox"]})
    return image, found


def coco_keypoints(rng: np.random.Generator, sources: list[np.ndarray], root: Path, split: str,
                   num_images: int, size: int, persons: tuple[int, int] = (1, 2)) -> dict:
    """Write ``num_images`` mannequin images into ``root/<split>2017`` and return the keypoints json."""
    images, annotations = coco_images(rng, sources, root, split, num_images, size,
                                      _ID_BASE[("person_keypoints", split)],
                                      functools.partial(persons_image, persons=persons))
    return coco_json(images, annotations, [coco_skeleton_category()])


def person_detections(rng: np.random.Generator, annotations: list[dict], jitter: float = 0.05) -> list[dict]:
    """Detector-style person boxes: each GT box with corners moved by up to ``jitter`` of its size."""
    detections = []
    for ann in annotations:
        x, y, w, h = ann["bbox"]
        dx1, dx2 = rng.uniform(-jitter, jitter, 2) * w
        dy1, dy2 = rng.uniform(-jitter, jitter, 2) * h
        box = [x + dx1, y + dy1, w - dx1 + dx2, h - dy1 + dy2]
        detections.append({"image_id": ann["image_id"], "category_id": 1,
                           "bbox": [round(float(v), 2) for v in box], "score": round(float(rng.uniform(0.9, 1.0)), 4)})
    return detections


# ---------------------------------------------------------------------------------- Cityscapes
def cityscapes_scene(rng: np.random.Generator, sources: list[np.ndarray], h: int, w: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """A street scene: (RGB float image, uint8 train-id map with 255 for the ego-vehicle hood)."""
    labels = np.full((h, w), _CS["sky"], np.uint8)
    horizon = int(h * rng.uniform(0.4, 0.55))
    x = 0
    while x < w:  # a skyline of buildings with trees in the gaps
        bw = int(w * rng.uniform(0.1, 0.3))
        top = int(h * rng.uniform(0.05, 0.3))
        if rng.random() < 0.7:
            labels[top:horizon, x:x + bw] = _CS["building"]
        else:
            cv2.ellipse(labels, (x + bw // 2, (top + horizon) // 2), (bw // 2 + 2, (horizon - top) // 2 + 2),
                        0, 0, 360, _CS["vegetation"], -1)
        x += bw
    labels[horizon:] = _CS["sidewalk"]
    if rng.random() < 0.5:
        labels[horizon:horizon + max(2, h // 16)] = _CS["terrain"]
    half_top, half_bottom = w * rng.uniform(0.05, 0.15), w * rng.uniform(0.35, 0.5)
    vx = w / 2 + w * rng.uniform(-0.1, 0.1)
    road = np.array([[vx - half_top, horizon], [vx + half_top, horizon],
                     [vx + half_bottom, h], [vx - half_bottom, h]])
    cv2.fillPoly(labels, [np.round(road).astype(np.int32)], _CS["road"])
    for _ in range(int(rng.integers(1, 4))):  # poles with a sign on top
        px, bottom = int(rng.uniform(0, w - 3)), int(rng.uniform(horizon + 4, h))
        ptop = int(rng.uniform(0.1, 0.3) * h)
        labels[ptop:bottom, px:px + 2] = _CS["pole"]
        if rng.random() < 0.6:
            labels[ptop:ptop + max(3, h // 20), max(0, px - 3):px + 5] = _CS["sign"]
    for _ in range(int(rng.integers(1, 4))):  # cars on the road, larger when nearer
        cy = int(rng.uniform(horizon + 0.15 * (h - horizon), h - 2))
        scale = (cy - horizon) / (h - horizon)
        cw, ch = max(6, int(w * 0.25 * scale)), max(4, int(h * 0.22 * scale))
        cx = int(vx + rng.uniform(-1, 1) * half_bottom * scale)
        labels[cy - ch // 2:cy, cx - cw // 2:cx + cw // 2] = _CS["car"]
        labels[cy - ch:cy - ch // 2, cx - cw // 3:cx + cw // 3] = _CS["car"]
    for _ in range(int(rng.integers(1, 4))):  # persons on the sidewalk
        feet = int(rng.uniform(horizon + 4, h - 2))
        ph = max(6, int(0.45 * h * (feet - horizon) / (h - horizon)))
        fx = int(rng.choice([rng.uniform(0, 0.25), rng.uniform(0.75, 1.0)]) * w)
        cv2.ellipse(labels, (fx, feet - ph * 2 // 5), (max(1, ph // 10), ph * 2 // 5), 0, 0, 360, _CS["person"], -1)
        cv2.circle(labels, (fx, feet - ph * 9 // 10), max(1, ph // 10), _CS["person"], -1)
    if rng.random() < 0.5:  # ego-vehicle hood along the bottom, ignored like in Cityscapes
        cv2.ellipse(labels, (w // 2, h), (int(w * 0.6), int(h * rng.uniform(0.06, 0.12))), 0, 180, 360,
                    _CS["ignore"], -1)
    image = np.zeros((h, w, 3), np.float32)
    for train_id in np.unique(labels):
        paint(image, labels == train_id, tinted_texture(rng, sources, h, w, _CS_COLORS[int(train_id)]))
    return image, labels


def label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Cityscapes label ids for a train-id map (255 -> 1, 'ego vehicle')."""
    table = np.ones(256, np.uint8)
    table[: len(CITYSCAPES_LABEL_IDS)] = CITYSCAPES_LABEL_IDS
    return table[train_ids]


def cityscapes_split(rng: np.random.Generator, sources: list[np.ndarray], root: Path, split: str,
                     num_images: int, size: int) -> list[str]:
    """Write ``num_images`` scenes (``size x size/2``) in the Cityscapes layout; return their stems."""
    stems = []
    for i in range(num_images):
        cities = CITYSCAPES_CITIES[split]
        city = cities[i % len(cities)]
        stem = f"{city}_{i:06d}_000019"
        image, train_ids = cityscapes_scene(rng, sources, size // 2, size)
        write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
        gt = root / "gtFine" / split / city
        gt.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelTrainIds.png"), train_ids)
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), label_ids(train_ids))
        stems.append(stem)
    return stems
