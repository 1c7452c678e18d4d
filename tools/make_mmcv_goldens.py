"""Write the golden outputs of mmcv 2.1.0's COMPILED RoIAlign and NMS that the lite stack is tested against.

    python tools/make_mmcv_goldens.py [--out tests/test_stack/goldens/mmcv_ops.pt]

Run it in an environment with the compiled mmcv (the full stack: ``tools/setup_env.py --mmcv full``);
it refuses the lite stack. The cases are drawn from a fixed seed and stored with their inputs, so the test
(``tests/test_stack/test_mmcv_lite_goldens.py``) replays exactly these tensors:

- RoIAlign forward and input gradients (a random upstream gradient) on random feature maps, with boxes
  inside, partly and wholly outside the map, tiny (< 1 px), huge (up to 10x the map) and degenerate
  (zero width), at spatial scales 1, 1/2, 1/4, 1/16, output sizes 7x7, 14x14, 2x3, sampling ratios
  0 (adaptive), 1, 2, aligned and not; plus mmdet's mask-target call (``BitmapMasks.crop_and_resize``:
  binary masks, 28x28, ratio 0, aligned);
- NMS (``mmcv.ops.nms``) on random boxes whose scores have many ties, exact duplicates, box pairs whose
  IoU equals the threshold exactly, offset 0 and 1, ``score_threshold`` and ``max_num``, no boxes;
- batched NMS (``mmcv.ops.batched_nms``) on the single-call path, the ``split_thr`` per-class path and
  class-agnostic.

Takes a few seconds; the file is a few hundred KB. Computed on the CPU (the compiled CPU kernels).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first, not an installed copy's

from dar_common.workdir import atomic_save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "test_stack" / "goldens" / "mmcv_ops.pt"
SEED = 20261201


def random_boxes(gen: torch.Generator, count: int, height: int, width: int, kind: str) -> torch.Tensor:
    """(count, 4) x1 y1 x2 y2 in image coordinates of a ``height`` x ``width`` image."""
    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(count, generator=gen)

    if kind == "inside":
        x1, y1 = u(0, width - 2), u(0, height - 2)
        return torch.stack([x1, y1, x1 + u(1, width / 2), y1 + u(1, height / 2)], 1).clamp(max=max(height, width))
    if kind == "partly_outside":
        x1, y1 = u(-width / 2, width), u(-height / 2, height)
        return torch.stack([x1, y1, x1 + u(1, width), y1 + u(1, height)], 1)
    if kind == "outside":
        x1, y1 = u(width + 2, 2 * width), u(height + 2, 2 * height)
        return torch.stack([x1, y1, x1 + u(1, 5), y1 + u(1, 5)], 1)
    if kind == "tiny":
        x1, y1 = u(0, width - 1), u(0, height - 1)
        return torch.stack([x1, y1, x1 + u(0.01, 0.9), y1 + u(0.01, 0.9)], 1)
    if kind == "huge":
        cx, cy, s = u(0, width), u(0, height), u(2, 10)
        return torch.stack([cx - s * width / 2, cy - s * height / 2, cx + s * width / 2, cy + s * height / 2], 1)
    if kind == "degenerate":
        x1, y1 = u(0, width), u(0, height)
        return torch.stack([x1, y1, x1, y1 + u(0, 4)], 1)
    raise ValueError(kind)


def roi_align_cases(gen: torch.Generator) -> list[dict]:
    """Inputs of each RoIAlign case (the outputs are added by :func:`run_roi_align`)."""
    kinds = ("inside", "partly_outside", "outside", "tiny", "huge", "degenerate")
    cases = []
    grid = [  # (spatial_scale, output size, sampling ratio, aligned)
        (1.0, (7, 7), 0, True), (0.5, (7, 7), 0, True), (0.25, (7, 7), 0, True), (1 / 16, (7, 7), 0, True),
        (0.25, (14, 14), 0, True), (0.5, (2, 3), 0, True), (0.5, (7, 7), 1, True), (0.25, (7, 7), 2, True),
        (1.0, (7, 7), 0, False), (0.125, (5, 4), 2, False),
    ]
    for scale, size, ratio, aligned in grid:
        batch, channels, fh, fw = 2, 2, int(torch.randint(9, 19, (1,), generator=gen)), int(torch.randint(9, 23, (1,), generator=gen))
        image_h, image_w = fh / scale, fw / scale
        boxes = torch.cat([random_boxes(gen, 3, image_h, image_w, kind) for kind in kinds])
        index = torch.randint(0, batch, (len(boxes), 1), generator=gen).float()
        cases.append(dict(
            name=f"scale{scale:g}_out{size[0]}x{size[1]}_ratio{ratio}_{'aligned' if aligned else 'legacy'}",
            feature=torch.randn(batch, channels, fh, fw, generator=gen), rois=torch.cat([index, boxes], 1),
            output_size=size, spatial_scale=scale, sampling_ratio=ratio, aligned=aligned))
    # mmdet's mask targets: BitmapMasks.crop_and_resize -> roi_align(masks, rois, (28, 28), 1.0, 0, 'avg', True)
    masks = (torch.rand(2, 1, 32, 48, generator=gen) > 0.5).float()
    boxes = torch.cat([random_boxes(gen, 3, 32, 48, kind) for kind in ("inside", "partly_outside", "tiny")])
    cases.append(dict(name="mask_targets_28x28", feature=masks,
                      rois=torch.cat([torch.arange(len(boxes)).remainder(2).float()[:, None], boxes], 1),
                      output_size=(28, 28), spatial_scale=1.0, sampling_ratio=0, aligned=True))
    for case in cases:
        rois = case["rois"]
        out_h, out_w = case["output_size"]
        case["grad_output"] = torch.randn(len(rois), case["feature"].shape[1], out_h, out_w, generator=gen)
    return cases


def run_roi_align(case: dict) -> dict:
    from mmcv.ops import roi_align

    feature = case["feature"].clone().requires_grad_()
    out = roi_align(feature, case["rois"], case["output_size"], case["spatial_scale"], case["sampling_ratio"],
                    "avg", case["aligned"])
    out.backward(case["grad_output"])
    return dict(output=out.detach(), grad_input=feature.grad)


def exact_iou_pairs(threshold: float) -> torch.Tensor:
    """Box pairs [0,0,10,10] / [0,0,10,10*t] whose IoU is exactly ``threshold`` in float32 arithmetic,
    spread apart so pairs don't interact."""
    rows = []
    for k in range(3):
        dx = 100.0 * k
        rows += [[dx, 0.0, dx + 10.0, 10.0], [dx, 0.0, dx + 10.0, 10.0 * threshold]]
    return torch.tensor(rows)


def nms_cases(gen: torch.Generator) -> list[dict]:
    cases = []
    for n, thr in ((200, 0.3), (300, 0.5), (300, 0.7), (120, 0.6)):
        boxes = random_boxes(gen, n, 64, 96, "inside")
        boxes[n // 2:n // 2 + 10] = boxes[:10]  # exact duplicates
        scores = torch.randint(0, 12, (n,), generator=gen).float() / 12  # heavy ties
        cases.append(dict(name=f"random{n}_iou{thr}", boxes=boxes, scores=scores, iou_threshold=thr))
    for thr in (0.3, 0.5, 0.7):
        boxes = exact_iou_pairs(thr)
        cases.append(dict(name=f"exact_iou_{thr}", boxes=boxes, scores=torch.tensor([0.9, 0.8, 0.7, 0.7, 0.5, 0.6]),
                          iou_threshold=thr))
    boxes = random_boxes(gen, 150, 40, 40, "inside").round()
    cases.append(dict(name="offset1_integer_boxes", boxes=boxes, scores=torch.rand(150, generator=gen),
                      iou_threshold=0.5, offset=1))
    boxes = random_boxes(gen, 150, 40, 40, "inside")
    cases.append(dict(name="offset1_float_boxes", boxes=boxes, scores=torch.rand(150, generator=gen),
                      iou_threshold=0.4, offset=1))
    boxes = random_boxes(gen, 250, 64, 64, "inside")
    cases.append(dict(name="score_threshold_max_num", boxes=boxes,
                      scores=torch.randint(0, 20, (250,), generator=gen).float() / 20,
                      iou_threshold=0.5, score_threshold=0.3, max_num=25))
    cases.append(dict(name="empty", boxes=torch.zeros(0, 4), scores=torch.zeros(0), iou_threshold=0.5))
    return cases


def run_nms(case: dict) -> dict:
    from mmcv.ops import nms

    _, keep = nms(case["boxes"], case["scores"], case["iou_threshold"], offset=case.get("offset", 0),
                     score_threshold=case.get("score_threshold", 0), max_num=case.get("max_num", -1))
    return dict(keep=keep)  # dets is boxes[keep] with scores[keep]: the test checks that


def batched_nms_cases(gen: torch.Generator) -> list[dict]:
    cases = []
    boxes = random_boxes(gen, 400, 80, 120, "inside")
    idxs = torch.randint(0, 5, (400,), generator=gen)
    scores = torch.randint(0, 16, (400,), generator=gen).float() / 16
    for name, cfg in (("single_call", dict(type="nms", iou_threshold=0.5)),
                      ("split_path", dict(type="nms", iou_threshold=0.5, split_thr=100)),
                      ("split_path_max_num", dict(type="nms", iou_threshold=0.6, split_thr=50, max_num=40)),
                      ("class_agnostic", dict(type="nms", iou_threshold=0.5, class_agnostic=True))):
        cases.append(dict(name=name, boxes=boxes, scores=scores, idxs=idxs, nms_cfg=cfg))
    return cases  # (no empty case: mmcv's batched_nms itself fails on one; mmdet never passes it one)


def run_batched_nms(case: dict) -> dict:
    from mmcv.ops import batched_nms

    cfg = dict(case["nms_cfg"])
    agnostic = cfg.pop("class_agnostic", False)
    dets, keep = batched_nms(case["boxes"], case["scores"], case["idxs"], cfg, class_agnostic=agnostic)
    return dict(dets=dets, keep=keep)


def make_cases() -> dict:
    """All cases' inputs, drawn from :data:`SEED` in a fixed order."""
    gen = torch.Generator().manual_seed(SEED)
    return dict(roi_align=roi_align_cases(gen), nms=nms_cases(gen), batched_nms=batched_nms_cases(gen))


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT.relative_to(ROOT)}")
    return parser


def main(args: argparse.Namespace) -> int:
    from transfer.mm.mmcv_lite_ops import FORCE_ENV, compiled_ops_installed

    if not compiled_ops_installed() or os.environ.get(FORCE_ENV):
        print("error: goldens need mmcv's compiled ops; this environment has the lite stack "
              f"(or {FORCE_ENV} is set). Set one up with: python tools/setup_env.py --mmcv full --venv DIR",
              file=sys.stderr)
        return 1
    import mmcv

    cases = make_cases()
    for case in cases["roi_align"]:
        case.update(run_roi_align(case))
    for case in cases["nms"]:
        case.update(run_nms(case))
    for case in cases["batched_nms"]:
        case.update(run_batched_nms(case))
    cases["meta"] = dict(mmcv=mmcv.__version__, torch=torch.__version__.split("+")[0], seed=SEED, device="cpu",
                         script="tools/make_mmcv_goldens.py")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(cases, args.out)  # a killed run leaves the old goldens
    counts = ", ".join(f"{len(cases[k])} {k}" for k in ("roi_align", "nms", "batched_nms"))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB): {counts} cases, "
          f"mmcv {mmcv.__version__} compiled ops, torch {cases['meta']['torch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
