"""Forward FLOPs and parameters of the model a config builds: a pre-training (timm) config or a transfer
(mmdet / mmseg / mmpose) config, counted by torch's ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matmuls; a multiply-add counts 2, as in ``pretrain.cost``; mmcv/mmdet's own tools
report multiply-adds, half this figure).

    python tools/analysis/get_flops.py CONFIG [--shape H [W]] [--num-classes N] [--json]

Default input: pre-training -- the config's ``data.img_size`` square; mmdet -- the test pipeline's Resize
scale, padded to 32 (800 x 1344 for the 1x COCO recipes); mmseg -- the config's ``crop_size``; mmpose --
the codec's ``input_size``. One image, eval mode, random weights (nothing is downloaded). For two-stage
detectors the RoI heads' share depends on how many proposals survive NMS, which a random image and random
weights make arbitrary (mmdet's get_flops has the same dependence on its sample image); the backbone and
neck figures do not.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's packages first, not an installed copy's

import transfer  # noqa: E402, F401  (first: on the lite stack it provides mmcv's ops)

TRANSFER_SCOPES = ("mmdet", "mmseg", "mmpose")


class FlopsError(ValueError):
    pass


def input_shape(cfg, scope: str | None, shape: list[int] | None) -> tuple[int, int]:
    """(H, W) of the one image to count."""
    if shape:
        return (shape[0], shape[-1])
    if scope is None:
        size = cfg.get("data", {}).get("img_size")
        return (size, size) if size else (224, 224)
    if scope == "mmseg" and cfg.get("crop_size"):
        return tuple(cfg.crop_size)
    if scope == "mmpose" and cfg.get("codec", {}).get("input_size"):
        width, height = cfg.codec.input_size
        return (height, width)
    if scope == "mmdet":
        for step in cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline", []):
            if step.get("type") == "Resize" and step.get("scale"):
                width, height = step["scale"]  # mmdet's scale is (w, h); keep_ratio fits within it
                return (math.ceil(min(width, height) / 32) * 32, math.ceil(max(width, height) / 32) * 32)
    raise FlopsError("cannot tell the input size from the config; pass --shape H W")


def build_pretrain_model(cfg, num_classes: int | None) -> torch.nn.Module:
    from pretrain.models import build_model

    data = cfg.get("data", {})
    classes = num_classes or data.get("num_classes") or (10 if data.get("type") == "digits" else 1000)
    return build_model(cfg.model.arch, classes)


def build_transfer_model(cfg, scope: str) -> torch.nn.Module:
    from mmengine.registry import init_default_scope

    init_default_scope(scope)
    registry = importlib.import_module(f"{scope}.registry").MODELS
    return registry.build(cfg.model)


def pretrain_forward(model: torch.nn.Module, height: int, width: int):
    inputs = torch.zeros(1, 3, height, width)
    return lambda: model(inputs)


def transfer_forward(model: torch.nn.Module, scope: str, height: int, width: int):
    """The ``mode='tensor'`` forward of an mm model on one random image (what mmdet's get_flops counts)."""
    inputs = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    if scope == "mmdet":
        from mmdet.structures import DetDataSample

        meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width),
                    batch_input_shape=(height, width), scale_factor=(1.0, 1.0))
        samples = [DetDataSample(metainfo=meta)]
        return lambda: model(inputs, samples, mode="tensor")
    return lambda: model(inputs, None, mode="tensor")  # through the model itself: per-child counts


def count(run, model: torch.nn.Module) -> tuple[float, dict[str, float]]:
    """Total forward FLOPs and those of the model's direct children."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, depth=2)
    with torch.no_grad(), counter:
        run()
    per_module = counter.get_flop_counts()  # keyed "<Class>.<child>.<grandchild>..."
    prefix = type(model).__name__
    children = {name: float(sum(per_module[f"{prefix}.{name}"].values()))
                for name, _ in model.named_children() if f"{prefix}.{name}" in per_module}
    return float(counter.get_total_flops()), children


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("config", help="configs/pretrain/*.py or configs/transfer/*.py")
    parser.add_argument("--shape", type=int, nargs="+", metavar="N", help="input H W (or one side: square)")
    parser.add_argument("--num-classes", type=int, help="pre-training classifier size (default: the data's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser


def main(args: argparse.Namespace) -> int:
    from mmengine.config import Config

    try:
        if not Path(args.config).is_file():
            raise FlopsError(f"config file not found: {args.config}")
        if args.shape and (len(args.shape) > 2 or min(args.shape) < 32):
            raise FlopsError(f"--shape takes H [W], each >= 32; got {args.shape}")
        cfg = Config.fromfile(args.config)
        scope = cfg.get("default_scope")
        if scope is not None and scope not in TRANSFER_SCOPES:
            raise FlopsError(f"config scope {scope!r} is not one of {', '.join(TRANSFER_SCOPES)}")
        height, width = input_shape(cfg, scope, args.shape)
    except FlopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if scope is None:
        model = build_pretrain_model(cfg, args.num_classes).eval()
        run = pretrain_forward(model, height, width)
    else:
        model = build_transfer_model(cfg, scope).eval()
        run = transfer_forward(model, scope, height, width)
    flops, children = count(run, model)
    params = sum(p.numel() for p in model.parameters())
    child_params = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    record = {"config": args.config, "kind": scope or "pretrain", "model": type(model).__name__,
              "input": [1, 3, height, width], "flops": flops, "params": params,
              "flops_by_module": children, "flops_other": flops - sum(children.values()),
              "params_by_module": {k: v for k, v in child_params.items() if v}}
    if args.json:
        print(json.dumps(record))
        return 0
    print(f"{args.config}: {record['kind']} {record['model']}, input 1x3x{height}x{width}")
    print(f"  forward FLOPs {flops / 1e9:.2f} G (multiply-add = 2), parameters {params / 1e6:.2f} M")
    for name, value in children.items():
        print(f"    {name:14s} {value / 1e9:9.2f} GFLOPs {child_params.get(name, 0) / 1e6:8.2f} M params")
    if record["flops_other"] > 0:  # e.g. mmdet's roi_head, which _forward calls by .forward(), not as a module
        print(f"    {'(other)':14s} {record['flops_other'] / 1e9:9.2f} GFLOPs")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
