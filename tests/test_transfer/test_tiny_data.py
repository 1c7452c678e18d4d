"""The tiny datasets, checked with the real readers: pycocotools, xtcocotools, mmdet, mmpose, mmseg."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from transfer.tinydata.generator import (
    COCO_KEYPOINT_NAMES,
    DETECTION_FILE,
    TINY_COCO_CLASSES,
    TINY_COCO_PALETTE,
    label_ids,
)
from transfer.tinydata.make import generate

NUM_TRAIN, NUM_VAL, SIZE = 200, 50, 128  # the CLI defaults: what the tiny configs read


def load_cli():
    path = Path(__file__).resolve().parents[2] / "tools" / "make_tiny_data.py"
    spec = importlib.util.spec_from_file_location("make_tiny_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """One default-sized generation through the CLI, shared by the reader tests."""
    out = tmp_path_factory.mktemp("tiny") / "data"
    cli = load_cli()
    assert cli.main(cli.get_args_parser().parse_args([str(out)])) == 0
    return out


def mask_extent(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


@pytest.mark.parametrize("split", ["train", "val"])
def test_instances_masks_boxes_and_colours_agree(data, split):
    coco = COCO(str(data / "coco/annotations" / f"instances_{split}2017.json"))
    assert len(coco.getImgIds()) == (NUM_TRAIN if split == "train" else NUM_VAL)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(TINY_COCO_CLASSES)
    assert {a["category_id"] for a in coco.loadAnns(coco.getAnnIds())} == {1, 2, 3}
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        assert info["file_name"] == f"{image_id:012d}.jpg"
        image = cv2.imread(str(data / "coco" / f"{split}2017" / info["file_name"]))[:, :, ::-1]
        assert image.shape[:2] == (info["height"], info["width"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert 1 <= len(anns) <= 3  # the --objects default
        short = min(info["height"], info["width"])
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            assert ann["iscrowd"] == 0 and mask.sum() == ann["area"]
            assert mask_extent(mask) == ann["bbox"]
            assert max(ann["bbox"][2:]) <= 2.2 * 0.3 * short + 2  # radius <= 0.3 short sides (a turned square: 2.19 r)
            # the class follows from the pixels: the object's mean colour is in its class's colour family
            mean = image[mask].mean(axis=0)
            assert int(np.argmax(mean)) == int(np.argmax(TINY_COCO_PALETTE[ann["category_id"] - 1]))


@pytest.mark.parametrize("split", ["train", "val"])
def test_keypoints_read_by_xtcocotools(data, split):
    from xtcocotools.coco import COCO as XtCOCO

    coco = XtCOCO(str(data / "coco/annotations" / f"person_keypoints_{split}2017.json"))
    (category,) = coco.loadCats(coco.getCatIds())
    assert category["id"] == 1 and category["name"] == "person"
    assert category["keypoints"] == list(COCO_KEYPOINT_NAMES) and len(category["skeleton"]) == 19
    instances = json.loads((data / "coco/annotations" / f"instances_{split}2017.json").read_text())
    assert not {i["id"] for i in instances["images"]} & set(coco.getImgIds())  # distinct image ids
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= len(coco.getImgIds())
    for ann in anns:
        info = coco.loadImgs(ann["image_id"])[0]
        image = cv2.imread(str(data / "coco" / f"{split}2017" / info["file_name"]))[:, :, ::-1]
        kpts = np.array(ann["keypoints"]).reshape(17, 3)
        assert ann["num_keypoints"] == int((kpts[:, 2] > 0).sum()) == 17
        x, y, w, h = ann["bbox"]
        assert (kpts[:, 0] >= x).all() and (kpts[:, 0] < x + w).all()
        assert (kpts[:, 1] >= y).all() and (kpts[:, 1] < y + h).all()
        assert coco.annToMask(ann).sum() == ann["area"]
        # each joint is a blob of its joint type's colour: wrists blue, ankles white, nose red
        for k, channel_order in ((0, (0, 2)), (9, (2, 0)), (10, (2, 0))):
            pixel = image[kpts[k, 1], kpts[k, 0]].astype(int)
            assert pixel[channel_order[0]] > pixel[channel_order[1]] + 60
        assert image[kpts[15, 1], kpts[15, 0]].min() > 150


def test_detection_file_covers_val_persons(data):
    gt = json.loads((data / "coco/annotations/person_keypoints_val2017.json").read_text())
    detections = json.loads((data / "coco/person_detection_results" / DETECTION_FILE).read_text())
    val_ids = {i["id"] for i in gt["images"]}
    assert len(detections) == len(gt["annotations"])
    by_image: dict[int, list] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["bbox"])
    for det in detections:
        assert det["image_id"] in val_ids and det["category_id"] == 1 and 0.9 <= det["score"] <= 1.0
        x, y, w, h = det["bbox"]
        best = max(_iou((x, y, w, h), box) for box in by_image[det["image_id"]])
        assert best > 0.75  # a slightly jittered ground-truth box


def _iou(a, b) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_cityscapes_label_maps(data):
    root = data / "cityscapes"
    images = sorted((root / "leftImg8bit").rglob("*_leftImg8bit.png"))
    assert len(images) == NUM_TRAIN + NUM_VAL
    seen = set()
    for path in images:
        stem = path.name[: -len("_leftImg8bit.png")]
        gt = root / "gtFine" / path.parent.relative_to(root / "leftImg8bit")
        train_ids = cv2.imread(str(gt / f"{stem}_gtFine_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
        ids = cv2.imread(str(gt / f"{stem}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
        assert train_ids.dtype == np.uint8 and train_ids.shape == (SIZE // 2, SIZE) == cv2.imread(str(path)).shape[:2]
        values = set(np.unique(train_ids).tolist())
        assert values <= set(range(19)) | {255}
        assert np.array_equal(ids, label_ids(train_ids))
        seen |= values
    assert {0, 1, 2, 5, 8, 10, 11, 13, 255} <= seen  # road, sidewalk, building, pole, veg., sky, person, car


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    def digests(seed: int, name: str) -> dict[str, str]:
        out = tmp_path / name
        generate(out, seed=seed, num_train=2, num_val=2, size=128, log=lambda _: None)
        return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*")) if p.is_file()}

    a, b, c = digests(1, "a"), digests(1, "b"), digests(2, "c")
    assert a == b
    assert a.keys() == c.keys()
    for name in ("coco/annotations/instances_val2017.json", "coco/annotations/person_keypoints_val2017.json"):
        assert a[name] != c[name]


def test_cli_refuses_non_empty_or_foreign_folder(tmp_path, capsys):
    cli = load_cli()
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    for argv in ([str(out)], [str(out), "--overwrite"], [str(tmp_path / "new"), "--size", "10"],
                 [str(tmp_path / "new"), "--objects", "3", "1"], [str(tmp_path / "new"), "--object-size", "0.1", "0.9"]):
        assert cli.main(cli.get_args_parser().parse_args(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
    assert (out / "keep.txt").read_text() == "user data" and not (tmp_path / "new").exists()


def test_cli_interrupted_run_leaves_nothing_then_overwrite_replaces(tmp_path, monkeypatch):
    cli = load_cli()
    out = tmp_path / "data"
    real_generate = cli.generate

    def interrupted(path, **kwargs):
        def log(msg):
            raise KeyboardInterrupt  # after the first dataset has been written

        real_generate(path, **{**kwargs, "log": log})

    monkeypatch.setattr(cli, "generate", interrupted)
    args = cli.get_args_parser().parse_args([str(out), "--num-train", "1", "--num-val", "1", "--size", "96"])
    with pytest.raises(KeyboardInterrupt):
        cli.main(args)
    assert not out.exists() and not list(tmp_path.glob(".data.*"))
    monkeypatch.setattr(cli, "generate", real_generate)
    assert cli.main(args) == 0 and (out / "meta.json").is_file()
    assert not list(tmp_path.glob(".data.*"))  # temporary folder renamed away
    (out / "stale.txt").write_text("from an older run")
    args.overwrite, args.seed = True, 3
    assert cli.main(args) == 0
    assert json.loads((out / "meta.json").read_text())["seed"] == 3 and not (out / "stale.txt").exists()


def test_mmdet_coco_dataset_reads_instances(data):
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations

    gt = json.loads((data / "coco/annotations/instances_train2017.json").read_text())
    dataset = CocoDataset(data_root=str(data / "coco"), ann_file="annotations/instances_train2017.json",
                          data_prefix=dict(img="train2017/"), metainfo=dict(classes=TINY_COCO_CLASSES),
                          filter_cfg=dict(filter_empty_gt=True, min_size=32), lazy_init=True,
                          pipeline=[LoadImageFromFile(), LoadAnnotations(with_bbox=True, with_mask=True)])
    dataset.full_init()
    assert len(dataset) == NUM_TRAIN
    assert sum(len(dataset.get_data_info(i)["instances"]) for i in range(len(dataset))) == len(gt["annotations"])
    sample = dataset[0]
    areas = sorted(a["area"] for a in gt["annotations"] if a["image_id"] == sample["img_id"])
    assert sample["img"].shape[:2] == sample["ori_shape"]
    assert sorted(sample["gt_masks"].areas.tolist()) == pytest.approx(areas, abs=1)
    assert set(sample["gt_bboxes_labels"].tolist()) <= {0, 1, 2}


def test_mmpose_coco_dataset_reads_keypoints_and_detections(data):
    from mmpose.datasets import CocoDataset

    gt = json.loads((data / "coco/annotations/person_keypoints_val2017.json").read_text())
    common = dict(data_root=str(data / "coco"), ann_file="annotations/person_keypoints_val2017.json",
                  data_prefix=dict(img="val2017/"), data_mode="topdown", pipeline=[])
    assert len(CocoDataset(**common)) == len(gt["annotations"])
    with_boxes = CocoDataset(**common, test_mode=True,
                             bbox_file=str(data / "coco/person_detection_results" / DETECTION_FILE))
    assert len(with_boxes) == len(gt["annotations"])
    assert all(Path(with_boxes.get_data_info(i)["img_path"]).is_file() for i in range(len(with_boxes)))


@pytest.mark.parametrize("split", ["train", "val"])
def test_mmseg_cityscapes_dataset_finds_every_pair(data, split):
    from mmseg.datasets import CityscapesDataset
    from mmseg.datasets.transforms import LoadAnnotations

    dataset = CityscapesDataset(data_root=str(data / "cityscapes"),
                                data_prefix=dict(img_path=f"leftImg8bit/{split}", seg_map_path=f"gtFine/{split}"),
                                pipeline=[LoadAnnotations()])
    assert len(dataset) == (NUM_TRAIN if split == "train" else NUM_VAL)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert Path(info["img_path"]).is_file() and Path(info["seg_map_path"]).is_file()
    seg = dataset[0]["gt_seg_map"]
    assert seg.shape == (SIZE // 2, SIZE) and set(np.unique(seg).tolist()) <= set(range(19)) | {255}
