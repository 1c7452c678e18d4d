"""Write the tiny COCO (instances + keypoints) and Cityscapes datasets that the `tiny` configs read.

    python tools/make_tiny_data.py data/tiny [--seed 0] [--num-train 200] [--num-val 50] [--size 128]
                                             [--objects 1 3] [--object-size 0.15 0.3] [--persons 1 2]

The folder is built next to OUT_DIR under a temporary name and renamed into place only when complete, so
an interrupted run never leaves a half dataset that looks finished. See docs/tiny_data.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first, not an installed copy's

from dar_common.workdir import atomic_dir  # noqa: E402
from transfer.tinydata import generate  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("out_dir", type=Path, help="folder to create (holds coco/ and cityscapes/)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--num-train", type=int, default=200, help="train images per dataset")
    parser.add_argument("--num-val", type=int, default=50, help="val images per dataset")
    parser.add_argument("--size", type=int, default=128,
                        help="long image side in pixels (COCO images are 4:3, Cityscapes SIZE x SIZE/2)")
    parser.add_argument("--objects", type=int, nargs=2, default=(1, 3), metavar=("MIN", "MAX"),
                        help="shapes per COCO instances image")
    parser.add_argument("--object-size", type=float, nargs=2, default=(0.15, 0.3), metavar=("MIN", "MAX"),
                        help="shape radius as a fraction of the image's short side")
    parser.add_argument("--persons", type=int, nargs=2, default=(1, 2), metavar=("MIN", "MAX"),
                        help="mannequins per COCO keypoints image")
    parser.add_argument("--classification", type=int, nargs=2, default=(1350, 450), metavar=("TRAIN", "VAL"),
                        help="images of the synthetic pre-training classification set in shapes/ (0 0: none)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an OUT_DIR written earlier by this tool")
    return parser


def made_by_us(path: Path) -> bool:
    """True when ``path`` holds a meta.json written by this tool."""
    try:
        return json.loads((path / "meta.json").read_text()).get("generator") == "tools/make_tiny_data.py"
    except (OSError, ValueError, AttributeError):
        return False


def check_args(args: argparse.Namespace) -> str | None:
    """One line saying what is wrong with the arguments, or None."""
    out: Path = args.out_dir
    if args.num_train < 1 or args.num_val < 1:
        return f"--num-train and --num-val must be >= 1 (got {args.num_train}, {args.num_val})"
    if not 64 <= args.size <= 2048:
        return f"--size must be between 64 and 2048 pixels (got {args.size})"
    for name, (lo, hi), low, high in (("--objects", args.objects, 1, 10), ("--persons", args.persons, 1, 5),
                                      ("--object-size", args.object_size, 0.03, 0.45)):
        if not low <= lo <= hi <= high:
            return f"{name} must be MIN MAX with {low} <= MIN <= MAX <= {high} (got {lo} {hi})"
    if min(args.classification) < 0 or (0 in args.classification and any(args.classification)):
        return f"--classification must be two positive counts, or 0 0 for none (got {args.classification})"
    if out.exists() and not out.is_dir():
        return f"{out} exists and is not a folder"
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:
            return f"{out} exists and is not empty (pass --overwrite to replace it)"
        if not made_by_us(out):
            return f"refusing to overwrite {out}: it has no meta.json from make_tiny_data.py"
    return None


def main(args: argparse.Namespace) -> int:
    problem = check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out: Path = args.out_dir.resolve()
    start = time.perf_counter()
    print(f"writing tiny datasets to {out} (seed {args.seed}, {args.num_train} train / {args.num_val} val "
          f"images per set, size {args.size})")
    # built under a temporary name and renamed into place whole; an interrupted run leaves nothing
    with atomic_dir(out) as tmp:
        generate(tmp, seed=args.seed, num_train=args.num_train, num_val=args.num_val, size=args.size,
                 objects=tuple(args.objects), object_size=tuple(args.object_size), persons=tuple(args.persons),
                 classification=tuple(args.classification),
                 log=lambda msg: print(f"  {msg}", flush=True))
    print(f"done in {time.perf_counter() - start:.1f} s: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
