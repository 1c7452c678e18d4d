"""pycocotools' and xtcocotools' COCOeval evaluate a two-image toy ground truth to hand-checked values."""
import contextlib
import io

import numpy as np
import pytest

import transfer  # noqa: F401  (compat: xtcocotools mask ops on NumPy 2)

KEYPOINT_NAMES = [f"kp{i}" for i in range(17)]


def toy_detection_gt() -> dict:
    """Two images; image 1 has two 'a' objects, image 2 one 'a' and one 'b'."""
    boxes = {1: [(1, [10, 10, 20, 20]), (1, [50, 50, 30, 30])], 2: [(1, [5, 5, 40, 40]), (2, [60, 10, 20, 30])]}
    anns, aid = [], 1
    for image_id, objs in boxes.items():
        for cat, box in objs:
            anns.append(dict(id=aid, image_id=image_id, category_id=cat, bbox=box, area=box[2] * box[3], iscrowd=0))
            aid += 1
    return dict(images=[dict(id=1, width=100, height=100), dict(id=2, width=100, height=100)],
                annotations=anns, categories=[dict(id=1, name="a"), dict(id=2, name="b")])


def evaluate(coco_module, cocoeval_module, gt: dict, dets: list, iou_type: str, **eval_kwargs) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_module.COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = cocoeval_module.COCOeval(coco_gt, coco_dt, iou_type, **eval_kwargs)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("package", ["pycocotools", "xtcocotools"])
def test_bbox_eval_perfect_and_half_recall(package):
    coco = pytest.importorskip(f"{package}.coco")
    cocoeval = pytest.importorskip(f"{package}.cocoeval")
    gt = toy_detection_gt()
    perfect = [dict(image_id=a["image_id"], category_id=a["category_id"], bbox=a["bbox"], score=0.9)
               for a in gt["annotations"]]
    assert evaluate(coco, cocoeval, gt, perfect, "bbox")[0] == pytest.approx(1.0)
    # Drop one of the three 'a' objects: category 'a' reaches recall 2/3 at precision 1, so its AP is the
    # share of the 101 recall thresholds <= 2/3 (0.00 .. 0.66: 67 of them); 'b' stays at 1.
    missing = [d for d in perfect if d["bbox"] != [50, 50, 30, 30]]
    ap = evaluate(coco, cocoeval, gt, missing, "bbox")[0]
    assert ap == pytest.approx((67 / 101 + 1.0) / 2)


def toy_keypoint_gt() -> dict:
    rng = np.random.default_rng(0)
    anns = []
    for i, image_id in enumerate((1, 2)):
        x0, y0 = 20 + 10 * i, 20
        pts = np.stack([x0 + rng.uniform(0, 40, 17), y0 + rng.uniform(0, 60, 17), np.full(17, 2.0)], 1)
        anns.append(dict(id=i + 1, image_id=image_id, category_id=1, bbox=[x0, y0, 40, 60], area=2400,
                         iscrowd=0, num_keypoints=17, keypoints=pts.round(1).flatten().tolist()))
    return dict(images=[dict(id=1, width=100, height=100), dict(id=2, width=100, height=100)],
                annotations=anns, categories=[dict(id=1, name="person", keypoints=KEYPOINT_NAMES,
                                                   skeleton=[[1, 2]])])


@pytest.mark.parametrize("package", ["pycocotools", "xtcocotools"])
def test_keypoint_eval_perfect_and_far_off(package):
    coco = pytest.importorskip(f"{package}.coco")
    cocoeval = pytest.importorskip(f"{package}.cocoeval")
    gt = toy_keypoint_gt()
    kwargs = {"sigmas": np.full(17, 0.05)} if package == "xtcocotools" else {}
    perfect = [dict(image_id=a["image_id"], category_id=1, keypoints=a["keypoints"], score=1.0)
               for a in gt["annotations"]]
    assert evaluate(coco, cocoeval, gt, perfect, "keypoints", **kwargs)[0] == pytest.approx(1.0)
    # Shift every keypoint of image 2 by 30 px: OKS ~ 0, so recall tops out at 1/2 -> AP = 51/101.
    shifted = [dict(d, keypoints=[v + (30 if j % 3 != 2 and d["image_id"] == 2 else 0)
                                  for j, v in enumerate(d["keypoints"])]) for d in perfect]
    assert evaluate(coco, cocoeval, gt, shifted, "keypoints", **kwargs)[0] == pytest.approx(51 / 101)
