"""Both stacks fine-tune the tiny Mask R-CNN to the same losses: 20 iterations from one seed, each stack
in its own process, every loss term within 1e-4 at every iteration.

The other stack comes from what this machine has. On the lite stack the compiled mmcv is the wheel that
``tools/setup_env.py --mmcv full`` cached (``~/.cache/dar-transfer/wheels/<key>/``), unpacked into a
folder put first on ``PYTHONPATH`` (the same torch, so the same ABI); without that wheel the test skips and
says so. On the full stack the lite side is the same process setup with ``DAR_TRANSFER_MMCV_OPS=
torchvision`` (mmcv-lite's Python files are mmcv 2.1.0's, byte for byte). Each process reports which ops
it ran, so the test cannot compare a stack with itself."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import transfer  # noqa: F401  (first: provides mmcv's ops on the lite stack)
from transfer.mm import mmcv_lite_ops

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "helpers" / "maskrcnn_losses.py"
ITERATIONS = 20
TOLERANCE = 1e-4


def load_setup_env():
    spec = importlib.util.spec_from_file_location("setup_env", ROOT / "tools" / "setup_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cached_compiled_wheel() -> Path | None:
    """The compiled mmcv wheel setup_env cached for this torch and Python (CPU ops), or None."""
    setup_env = load_setup_env()
    info = {"torch": torch.__version__.split("+")[0], "cuda": torch.version.cuda, "gpu": False,
            "py": f"{sys.version_info[0]}{sys.version_info[1]}", "capabilities": [], "site": ""}
    key, _ = setup_env.mmcv_build_plan(info, {}, nvcc=False)
    wheels = sorted((setup_env.cache_dir() / "wheels" / key).glob("mmcv-*.whl"))
    return wheels[-1] if wheels else None


def run_stack(work: Path, data_parent: Path, **env: str) -> dict:
    work.mkdir(parents=True)
    proc = subprocess.run([sys.executable, str(DRIVER), str(work), "--iters", str(ITERATIONS)],
                          cwd=data_parent, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONHASHSEED": "0", **env})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((work / "losses.json").read_text())


@pytest.fixture(scope="module")
def both_stacks(tmp_path_factory) -> tuple[dict, dict]:
    from transfer.tinydata import generate

    base = tmp_path_factory.mktemp("parity")
    if mmcv_lite_ops.compiled_ops_installed():
        lite_env: dict[str, str] = {mmcv_lite_ops.FORCE_ENV: "torchvision"}
        full_env: dict[str, str] = {}
    else:
        wheel = cached_compiled_wheel()
        if wheel is None:
            pytest.skip("no compiled mmcv here: the lite stack is installed and no cached wheel exists "
                        "(python tools/setup_env.py --mmcv full --venv DIR builds and caches one)")
        overlay = base / "compiled-mmcv"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(overlay)
        lite_env = {}
        full_env = {"PYTHONPATH": os.pathsep.join([str(overlay), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    # the COCO part only, small: 24 training images are plenty for 20 iterations
    generate(base / "data" / "tiny", seed=0, num_train=24, num_val=4, classification=(0, 0), log=lambda _msg: None)
    lite = run_stack(base / "lite", base, **lite_env)
    full = run_stack(base / "full", base, **full_env)
    return lite, full


@pytest.mark.slow
def test_maskrcnn_losses_agree_on_both_stacks(both_stacks):
    lite, full = both_stacks
    assert (lite["ops"], full["ops"]) == ("lite", "full")
    assert len(lite["losses"]) == len(full["losses"]) == ITERATIONS
    largest, where = 0.0, None
    for step, (a, b) in enumerate(zip(lite["losses"], full["losses"], strict=True)):
        assert a.keys() == b.keys() and {"loss_rpn_cls", "loss_cls", "loss_bbox", "loss_mask"} <= a.keys()
        for name in a:
            diff = abs(a[name] - b[name])
            if diff > largest:
                largest, where = diff, (step, name)
    print(f"\nlargest loss difference lite vs compiled over {ITERATIONS} iterations: {largest:.3g} at {where}")
    assert largest <= TOLERANCE, (largest, where)
    assert lite["losses"][0]["loss"] != lite["losses"][-1]["loss"]  # it trained: the losses moved
