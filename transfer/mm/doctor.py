"""Environment check: versions, mmcv's compiled ops, CUDA, and each task's reference model.

    python -m transfer.mm.doctor [--brief]

Prints one line per check; exits 1 when any check failed, after printing one line per failure.
``--brief`` skips building the reference models (a few seconds each on a CPU).
"""
from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
import warnings
from collections.abc import Callable

from transfer.tasks import TASKS

PACKAGES = ("torch", "torchvision", "timm", "numpy", "mmengine", "mmcv", "mmdet", "mmseg", "mmpose",
            "pycocotools", "xtcocotools")


def check_mmcv_ops() -> str:
    """Run RoIAlign and nms on tiny tensors and compare with values worked out by hand."""
    import torch
    from mmcv.ops import nms, roi_align

    feature = torch.arange(16.0).reshape(1, 1, 4, 4)
    # One 2x2-pixel RoI covering pixels (1..2, 1..2); aligned=True makes pixel centres sit at +0.5, so
    # the single bin averages feature[1:3, 1:3] = (5 + 6 + 9 + 10) / 4 = 7.5.
    rois = torch.tensor([[0.0, 1.0, 1.0, 3.0, 3.0]])
    pooled = roi_align(feature, rois, (1, 1), 1.0, 0, "avg", True)
    if abs(pooled.item() - 7.5) > 1e-5:
        raise RuntimeError(f"roi_align gave {pooled.item()}, expected 7.5")
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    if keep.tolist() != [0, 2]:
        raise RuntimeError(f"nms kept {keep.tolist()}, expected [0, 2]")
    return "roi_align and nms correct"


def check_cuda() -> str:
    import torch

    if not torch.cuda.is_available():
        return f"not available (torch built for CUDA {torch.version.cuda}); running on CPU"
    return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"


def check_task(task: str) -> Callable[[], str]:
    def run() -> str:
        from .reference import REFERENCE_CONFIGS, build_reference_model

        t0 = time.time()
        with warnings.catch_warnings():  # the toolboxes' deprecation chatter is not a finding
            warnings.simplefilter("ignore")
            model, _ = build_reference_model(task)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        return f"{REFERENCE_CONFIGS[task][2]} builds ({params:.1f} M params, {time.time() - t0:.1f} s)"

    return run


def version_of(name: str) -> str:
    module = importlib.import_module(name)
    if hasattr(module, "__version__"):
        return module.__version__
    from importlib.metadata import version

    return version(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the dar-transfer environment.")
    parser.add_argument("--brief", action="store_true", help="skip building the reference models (one per task)")
    args = parser.parse_args(argv)

    checks: list[tuple[str, Callable[[], str]]] = [("python", platform.python_version)]
    checks += [(name, lambda name=name: version_of(name)) for name in PACKAGES]
    checks += [("transfer compat", lambda: ", ".join(importlib.import_module("transfer.mm.compat").APPLIED) or "none needed"),
               ("mmcv ops", check_mmcv_ops), ("cuda", check_cuda)]
    if not args.brief:
        checks += [(f"task {task}", check_task(task)) for task in TASKS]

    failures = []
    for name, check in checks:
        try:
            print(f"  OK    {name:16s} {check()}", flush=True)
        except Exception as exc:  # report every failure, keep checking the rest
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"  FAIL  {name:16s} {reason}", flush=True)
            failures.append(f"{name}: {reason}")
    if failures:
        print(f"doctor: {len(failures)} check(s) failed", file=sys.stderr)
        for line in failures:
            print(f"error: {line}", file=sys.stderr)
        return 1
    print("doctor: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
