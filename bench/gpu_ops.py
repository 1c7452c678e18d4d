"""mmcv's ops on CUDA against the same ops on the CPU: the values a GPU run must reproduce.

    python bench/gpu_ops.py [--device cuda] [--out FILE.json]

RoIAlign forward and input gradient (mmdet's RoI and mask-target settings), NMS and batched NMS on boxes
with tied scores, and sigmoid focal loss (mmcv's CUDA kernel; on the CPU mmdet's own PyTorch version),
through mmcv's Python wrappers on whichever stack is installed (compiled mmcv, or the lite stack's
torchvision kernels). Reports the largest absolute differences and whether NMS kept the same boxes.
``--device cpu`` compares the CPU with itself (a check that the script runs, used by gpu_check's dry mode).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import transfer  # noqa: F401  (first: on the lite stack it provides mmcv's ops)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import write_json  # noqa: E402


def random_boxes(gen: torch.Generator, n: int, size: float) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * size
    wh = torch.rand(n, 2, generator=gen) * size / 3 + 0.5
    return torch.cat([xy, xy + wh], 1)


def roi_align_diffs(device: str, gen: torch.Generator) -> dict:
    from mmcv.ops import roi_align

    out = {}
    settings = {"bbox_7x7_scale0.25": ((7, 7), 0.25, 64), "mask_target_28x28": ((28, 28), 1.0, 48)}
    for name, (size, scale, side) in settings.items():
        feature = torch.randn(2, 8, side, side, generator=gen)
        boxes = random_boxes(gen, 64, side / scale)
        rois = torch.cat([torch.randint(0, 2, (64, 1), generator=gen).float(), boxes], 1)
        upstream = torch.randn(64, 8, *size, generator=gen)
        results = []
        for dev in ("cpu", device):
            x = feature.to(dev).requires_grad_()
            y = roi_align(x, rois.to(dev), size, scale, 0, "avg", True)
            y.backward(upstream.to(dev))
            results.append((y.detach().cpu(), x.grad.cpu()))
        (y0, g0), (y1, g1) = results
        out[name] = {"forward_max_abs_diff": (y0 - y1).abs().max().item(),
                     "grad_max_abs_diff": (g0 - g1).abs().max().item()}
    return out


def nms_agreement(device: str, gen: torch.Generator) -> dict:
    from mmcv.ops import batched_nms, nms

    boxes = random_boxes(gen, 2000, 400.0)
    scores = torch.randint(0, 50, (2000,), generator=gen).float() / 50  # ties
    idxs = torch.randint(0, 10, (2000,), generator=gen)
    cpu = nms(boxes, scores, 0.5)[1]
    dev = nms(boxes.to(device), scores.to(device), 0.5)[1].cpu()
    cfg = dict(type="nms", iou_threshold=0.6)
    bcpu = batched_nms(boxes, scores, idxs, dict(cfg))[1]
    bdev = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), dict(cfg))[1].cpu()
    return {"nms_same_indices": cpu.tolist() == dev.tolist(), "nms_kept": len(cpu),
            "nms_same_set": set(cpu.tolist()) == set(dev.tolist()),
            "batched_nms_same_indices": bcpu.tolist() == bdev.tolist(), "batched_nms_kept": len(bcpu)}


def focal_loss_diff(device: str, gen: torch.Generator) -> dict:
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss, sigmoid_focal_loss

    logits = torch.randn(4000, 80, generator=gen) * 3
    target = torch.randint(0, 81, (4000,), generator=gen)
    one_hot = torch.nn.functional.one_hot(target, 81)[:, :80].float()
    x = logits.clone().requires_grad_()
    ref = py_sigmoid_focal_loss(x, one_hot, reduction="sum")
    ref.backward()
    y = logits.to(device).requires_grad_()
    # mmdet's FocalLoss takes this path (mmcv's op) on CUDA; on the CPU the PyTorch one above
    got = sigmoid_focal_loss(y, target.to(device), reduction="sum") if device != "cpu" else \
        py_sigmoid_focal_loss(y, one_hot, reduction="sum")
    got.backward()
    return {"loss_rel_diff": abs(got.item() - ref.item()) / abs(ref.item()),
            "grad_max_abs_diff": (y.grad.cpu() - x.grad).abs().max().item()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU", file=sys.stderr)
        return 1
    gen = torch.Generator().manual_seed(0)
    from transfer.mm.mmcv_lite_ops import active

    record = {"device": args.device, "ops": "lite (torchvision)" if active() else "compiled mmcv",
              "roi_align": roi_align_diffs(args.device, gen), "nms": nms_agreement(args.device, gen),
              "sigmoid_focal_loss": focal_loss_diff(args.device, gen)}
    if args.out:
        write_json(args.out, record)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
