"""Probe a pre-trained backbone: kNN top-1 and a linear dense probe (mIoU) on its frozen features.

    python tools/probe.py CKPT [--config CFG] [--tasks knn dense] [--out probe.json]
    python tools/probe.py published/r50_dar86-1a2b3c4d.pth --config configs/pretrain/imagenet_r50_dar86_120e.py \\
        --knn-root data/imagenet100 --dense-root data/cityscapes --dense-size 512 1024

CKPT is a pre-training work dir, a checkpoint (``epoch_<n>.pth``), ``backbone.pth`` or a published file;
the architecture comes from its ``meta`` (``meta.arch``). kNN (cosine, k = 20, votes weighted by
``exp(cos / 0.07)``; ``--vote majority`` for one vote each) classifies the pre-training validation set
against the training set's features (the run's data config: in the checkpoint, beside it as config.py,
or ``--config``), or ``--knn-root``'s ``val/`` against its ``train/`` (ImageFolder). The dense probe
fits a 1x1-conv head on frozen multi-scale features of ``--dense-root``'s ``train`` split (Cityscapes
layout, default the tiny set ``tools/make_tiny_data.py data/tiny`` writes) for a fixed number of steps
with a fixed seed and reports mIoU on its ``val`` split. See docs/pretrain.md ("Probes").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first, not an installed copy's


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="work dir, checkpoint, backbone.pth or published file")
    p.add_argument("--config", help="pre-training config for the data (default: the checkpoint's)")
    p.add_argument("--tasks", nargs="+", default=["knn", "dense"], choices=["knn", "dense"])
    p.add_argument("--knn-root", help="ImageFolder root with train/ and val/ (default: the config's data)")
    p.add_argument("--k", type=int, default=20, help="neighbours (default 20)")
    p.add_argument("--vote", choices=["weighted", "majority"], default="weighted")
    p.add_argument("--bank", type=int, help="training images in the kNN bank (default: all)")
    p.add_argument("--queries", type=int, help="validation images classified (default: all)")
    p.add_argument("--dense-root", default="data/tiny/cityscapes", help="Cityscapes-layout folder")
    p.add_argument("--dense-size", type=int, nargs=2, metavar=("H", "W"),
                   help="resize the dense images to H x W (default: 2x / 4x the training resolution)")
    p.add_argument("--dense-steps", type=int, default=100, help="head training steps (default 100)")
    p.add_argument("--dense-train", type=int, help="training images for the head (default: all)")
    p.add_argument("--dense-val", type=int, help="val images for mIoU (default: all)")
    p.add_argument("--img-size", type=int, help="image size when no config says (default 224)")
    p.add_argument("--seed", type=int, default=0, help="which images are drawn and the head's init")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="data loader workers")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", help="write the results here as JSON (atomically)")
    return p


def probe_config(args: argparse.Namespace) -> dict:
    knn = {"k": args.k, "vote": args.vote, "bank": args.bank, "queries": args.queries, "seed": args.seed}
    if args.knn_root:
        knn["root"] = args.knn_root
    dense = {"root": args.dense_root, "steps": args.dense_steps, "train_images": args.dense_train,
             "val_images": args.dense_val, "seed": args.seed}
    if args.dense_size:
        dense["size"] = tuple(args.dense_size)
    return {"tasks": args.tasks, "budget": None, "batch_size": args.batch_size, "knn": knn, "dense": dense}


def data_config(args: argparse.Namespace, config: dict | None) -> dict:
    """The data section the probe reads: the run's (or ``--config``'s), else just an image size."""
    data = dict((config or {}).get("data") or {})
    if args.img_size:
        data["img_size"] = args.img_size
    if "knn" in args.tasks and not args.knn_root and not data.get("type"):
        raise ValueError("the kNN probe needs the pre-training data: pass --config CFG or --knn-root DIR")
    data.setdefault("img_size", 224)
    return data


def main(args: argparse.Namespace) -> int:
    from dar_common.workdir import atomic_write_json
    from pretrain.backbone_file import BackboneFileError, load_backbone, read_config
    from pretrain.data import DataError, build_dataset
    from pretrain.errors import ConfigError
    from pretrain.probes.build import ProbeConfig, build_prober

    try:
        if args.out and not Path(args.out).parent.is_dir():
            raise ValueError(f"--out folder does not exist: {Path(args.out).parent}")
        config = read_config(args.config) if args.config else None
        model, meta, config, file = load_backbone(args.checkpoint, config)
        data = data_config(args, config)
        cfg = ProbeConfig.from_dict(probe_config(args))
        train_set = val_set = None
        if "knn" in args.tasks and not args.knn_root:
            train_set, val_set = build_dataset(data, "train", uint8=True), build_dataset(data, "val", uint8=True)
        model = model.to(args.device)
        prober, _ = build_prober(cfg, model, data, train_set=train_set, val_set=val_set, workers=args.workers)
    except (BackboneFileError, ConfigError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"probing {file} ({meta.get('arch')}, method {meta.get('method')}) on {args.device}: "
          + json.dumps(prober.describe()), flush=True)
    result = prober(model)
    if result["knn_top1"] is not None:
        k = result["knn"]
        print(f"knn top-1 {result['knn_top1']:.2f}% (k={k['k']}, {k['vote']}, bank {k['bank']}, "
              f"{k['queries']} queries)")
    if result["dense_miou"] is not None:
        d = result["dense"]
        print(f"dense mIoU {result['dense_miou']:.2f}% ({d['classes']} classes, {d['train_images']} train / "
              f"{d['val_images']} val images at {d['size'][0]}x{d['size'][1]}, {d['steps']} steps)")
    print(f"probe cost {result['probe_flops']:.3g} FLOPs, {result['probe_wall_s']:.1f} s")
    if args.out:
        record = {"checkpoint": str(file), "arch": meta.get("arch"), "method": meta.get("method"), **result}
        atomic_write_json(args.out, record)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
