"""The lite stack's ops reproduce mmcv 2.1.0's compiled kernels.

``goldens/mmcv_ops.pt`` holds inputs and outputs written by ``tools/make_mmcv_goldens.py`` with the
compiled mmcv (CPU kernels). Here the same inputs go through mmcv's own Python wrappers (``roi_align``,
``nms``, ``batched_nms``) with the kernels of :mod:`transfer.mm.mmcv_lite_ops`, on either stack: RoIAlign
outputs and input gradients to 1e-5, NMS the identical indices (and scores)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import transfer  # noqa: F401  (first: provides mmcv's ops on the lite stack)

# isort: split
import mmcv.ops

from transfer.mm import mmcv_lite_ops

GOLDENS = torch.load(Path(__file__).parent / "goldens" / "mmcv_ops.pt", weights_only=True)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
ROI_ALIGN_TOL = 1e-5


@pytest.fixture
def lite_kernels(monkeypatch):
    """mmcv's wrappers bound to the lite kernels, whichever stack is installed."""
    ext = mmcv_lite_ops.build_ext_module()
    for name in ("roi_align", "nms"):  # the modules (mmcv.ops.roi_align and .nms are functions)
        monkeypatch.setattr(sys.modules[f"mmcv.ops.{name}"], "ext_module", ext)


def test_goldens_come_from_the_compiled_mmcv_and_cover_the_cases():
    meta = GOLDENS["meta"]
    assert meta["mmcv"] == "2.1.0" and meta["script"] == "tools/make_mmcv_goldens.py"
    names = {case["name"] for case in GOLDENS["roi_align"]}
    assert {"mask_targets_28x28", "scale0.0625_out7x7_ratio0_aligned", "scale1_out7x7_ratio0_legacy"} <= names
    assert {case["sampling_ratio"] for case in GOLDENS["roi_align"]} == {0, 1, 2}
    # Ties: every random NMS case has far fewer distinct scores than boxes.
    for case in GOLDENS["nms"]:
        if case["name"].startswith("random"):
            assert case["scores"].unique().numel() <= case["scores"].numel() / 10


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", GOLDENS["roi_align"], ids=lambda case: case["name"])
def test_roi_align_forward_and_input_gradient_match_compiled_mmcv(case, device, lite_kernels):
    feature = case["feature"].to(device).requires_grad_()
    out = mmcv.ops.roi_align(feature, case["rois"].to(device), case["output_size"], case["spatial_scale"],
                             case["sampling_ratio"], "avg", case["aligned"])
    out.backward(case["grad_output"].to(device))
    assert case["output"].abs().max() > 0.1 and case["grad_input"].abs().max() > 0.1  # not a trivial case
    forward_diff = (out.detach().cpu() - case["output"]).abs().max().item()
    grad_diff = (feature.grad.cpu() - case["grad_input"]).abs().max().item()
    assert forward_diff <= ROI_ALIGN_TOL and grad_diff <= ROI_ALIGN_TOL, (forward_diff, grad_diff)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", GOLDENS["nms"], ids=lambda case: case["name"])
def test_nms_keeps_the_same_boxes_as_compiled_mmcv(case, device, lite_kernels):
    dets, keep = mmcv.ops.nms(case["boxes"].to(device), case["scores"].to(device), case["iou_threshold"],
                              offset=case.get("offset", 0), score_threshold=case.get("score_threshold", 0),
                              max_num=case.get("max_num", -1))
    assert keep.cpu().tolist() == case["keep"].tolist()
    expected = torch.cat([case["boxes"][case["keep"]], case["scores"][case["keep"], None]], 1)
    assert torch.equal(dets.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", GOLDENS["batched_nms"], ids=lambda case: case["name"])
def test_batched_nms_keeps_the_same_boxes_as_compiled_mmcv(case, device, lite_kernels):
    cfg = dict(case["nms_cfg"])
    agnostic = cfg.pop("class_agnostic", False)
    dets, keep = mmcv.ops.batched_nms(case["boxes"].to(device), case["scores"].to(device),
                                      case["idxs"].to(device), cfg, class_agnostic=agnostic)
    assert keep.cpu().tolist() == case["keep"].tolist()
    assert torch.equal(dets.cpu(), case["dets"])
