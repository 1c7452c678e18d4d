"""The lite stack's mechanism and the ops the goldens don't cover: sigmoid focal loss (mmcv has it for
CUDA only, so there is no CPU golden; it is checked against mmdet's own PyTorch focal loss), mask targets
through mmdet's ``BitmapMasks``, the one-line error of every other op, and when the module is installed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import transfer  # noqa: F401  (first: provides mmcv's ops on the lite stack)

# isort: split
import mmcv.ops

from transfer.mm import mmcv_lite_ops

ROOT = Path(__file__).resolve().parents[2]
LITE = mmcv_lite_ops.compiled_ops_installed() is False


@pytest.fixture
def lite_ext(monkeypatch):
    ext = mmcv_lite_ops.build_ext_module()
    for name in ("roi_align", "focal_loss", "deform_conv"):  # the modules (mmcv.ops.roi_align is a function)
        monkeypatch.setattr(sys.modules[f"mmcv.ops.{name}"], "ext_module", ext)
    return ext


def test_the_installed_stack_decides_where_the_ops_come_from():
    assert mmcv_lite_ops.active() == LITE
    assert ("PROVIDED_BY" in vars(sys.modules["mmcv._ext"])) == LITE
    assert mmcv.ops.get_compiling_cuda_version()  # mmdet's env report calls these on either stack
    assert mmcv.ops.get_compiler_version()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_focal_loss_matches_mmdets_pytorch_focal_loss(reduction, lite_ext):
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

    gen = torch.Generator().manual_seed(0)
    classes = 5
    logits = (4 * torch.randn(64, classes, generator=gen, dtype=torch.float64)).requires_grad_()
    target = torch.randint(0, classes + 1, (64,), generator=gen)  # classes = background
    loss = mmcv.ops.sigmoid_focal_loss(logits, target, 2.0, 0.25, None, reduction)
    (loss if reduction != "none" else loss.sum()).backward()
    ours = logits.grad.clone()

    logits.grad = None
    one_hot = torch.nn.functional.one_hot(target, classes + 1)[:, :classes].to(logits.dtype)
    # mmdet's version reduces 'mean' over all N*C elements; mmcv's kernel path over the N rows.
    reference = py_sigmoid_focal_loss(logits, one_hot, gamma=2.0, alpha=0.25, reduction="none")
    reference = {"mean": reference.sum() / len(target), "sum": reference.sum(), "none": reference}[reduction]
    (reference if reduction != "none" else reference.sum()).backward()
    torch.testing.assert_close(loss, reference, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours, logits.grad, rtol=1e-7, atol=1e-9)


def test_sigmoid_focal_loss_class_weight_scales_each_row(lite_ext):
    gen = torch.Generator().manual_seed(1)
    logits, target = torch.randn(8, 3, generator=gen), torch.randint(0, 3, (8,), generator=gen)
    weight = torch.tensor([0.5, 1.0, 2.0])
    plain = mmcv.ops.sigmoid_focal_loss(logits, target, 2.0, 0.25, None, "none")
    weighted = mmcv.ops.sigmoid_focal_loss(logits, target, 2.0, 0.25, weight, "none")
    torch.testing.assert_close(weighted, plain * weight[target][:, None])
    with pytest.raises(ValueError, match="background"):
        mmcv.ops.sigmoid_focal_loss(logits, torch.full((8,), 3), 2.0, 0.25, weight, "none")


def test_mask_targets_through_mmdets_bitmap_masks(lite_ext):
    from mmdet.structures.mask import BitmapMasks

    masks = np.zeros((2, 40, 60), dtype=np.uint8)
    masks[0, 10:30, 20:50] = 1  # a 30x20 rectangle
    masks[1, :, :30] = 1  # the left half
    bitmap = BitmapMasks(masks, 40, 60)
    # Box 0 lies inside the rectangle: all ones. Box 1 straddles the half's edge at x=30 in its middle:
    # the left half of the 28x28 target is ones, the right half zeros.
    boxes = np.array([[24.0, 14.0, 44.0, 26.0], [10.0, 0.0, 50.0, 40.0]], dtype=np.float32)
    targets = bitmap.crop_and_resize(boxes, (28, 28), np.array([0, 1]), device="cpu").to_ndarray()
    assert targets.shape == (2, 28, 28)
    assert targets[0].all()
    assert targets[1][:, :14].all() and not targets[1][:, 14:].any()


def test_any_other_op_raises_one_line_naming_it(lite_ext):
    layer = mmcv.ops.DeformConv2d(1, 1, 3)
    with pytest.raises(mmcv_lite_ops.CompiledOpRequired) as err:
        layer(torch.zeros(1, 1, 5, 5), torch.zeros(1, 18, 3, 3))
    message = str(err.value)
    assert "\n" not in message and "'deform_conv_forward'" in message and "--mmcv full" in message
    with pytest.raises(mmcv_lite_ops.CompiledOpRequired, match="pool_mode='max'"):
        mmcv.ops.roi_align(torch.zeros(1, 1, 4, 4), torch.tensor([[0.0, 0, 0, 2, 2]]), 2, 1.0, 0, "max", True)
    with pytest.raises(AttributeError):  # dunders stay honest for import machinery and pickling
        lite_ext.__wrapped__  # noqa: B018


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=300)


def test_forcing_the_torchvision_ops_and_the_import_order():
    probe = "import transfer, mmcv.ops; from transfer.mm.mmcv_lite_ops import active; print(active())"
    forced = run_python(probe, DAR_TRANSFER_MMCV_OPS="torchvision")
    assert forced.returncode == 0 and forced.stdout.strip() == "True", forced.stderr[-2000:]
    # mmcv.ops first, without importing transfer: on the lite stack the finder that tools/setup_env.py's
    # .pth installs provides mmcv._ext (issue 20: the toolboxes' own tools); on the full stack it is compiled.
    early = run_python("import sys, mmcv.ops; print(vars(sys.modules['mmcv._ext']).get('PROVIDED_BY'))")
    assert early.returncode == 0, early.stderr[-2000:]
    assert early.stdout.strip() == ("transfer.mm.mmcv_lite_ops" if LITE else "None")
