"""mmcv's ops (compiled, or the lite stack's torchvision kernels) give the values worked out by hand."""
import torch

import transfer  # noqa: F401  (first: provides mmcv's ops on the lite stack)

# isort: split
from mmcv.ops import nms, roi_align

from transfer.mm.doctor import check_mmcv_ops


def test_roi_align_matches_hand_computed_bins():
    feature = torch.arange(16.0).reshape(1, 1, 4, 4)
    # A 2x2 RoI over pixels 1..2 (aligned: centres at +0.5) split into 2x2 bins, one sample per bin
    # at each bin centre, which lands exactly on a pixel centre: the bins are the pixels themselves.
    rois = torch.tensor([[0.0, 1.0, 1.0, 3.0, 3.0]])
    out = roi_align(feature, rois, (2, 2), 1.0, 1, "avg", True)
    assert out.shape == (1, 1, 2, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([[5.0, 6.0], [9.0, 10.0]]))
    # One bin over the same RoI averages the four pixels.
    assert roi_align(feature, rois, (1, 1), 1.0, 0, "avg", True).item() == 7.5


def test_roi_align_gradient_flows_back_to_the_sampled_pixels():
    feature = torch.arange(16.0).reshape(1, 1, 4, 4).requires_grad_()
    rois = torch.tensor([[0.0, 1.0, 1.0, 3.0, 3.0]])
    roi_align(feature, rois, (2, 2), 1.0, 1, "avg", True).sum().backward()
    expected = torch.zeros(4, 4)
    expected[1:3, 1:3] = 1.0
    torch.testing.assert_close(feature.grad[0, 0], expected)


def test_nms_suppresses_overlaps_above_threshold_only():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],   # kept: highest score
                          [1.0, 1.0, 11.0, 11.0],   # IoU with box 0 = 81/119 = 0.68 > 0.5: dropped
                          [5.0, 0.0, 15.0, 10.0],   # IoU with box 0 = 50/150 = 0.33 < 0.5: kept
                          [20.0, 20.0, 30.0, 30.0]])  # disjoint: kept
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    dets, keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2, 3]
    torch.testing.assert_close(dets[:, 4], torch.tensor([0.9, 0.7, 0.6]))
    # At a threshold below 0.33 the third box goes too.
    assert nms(boxes, scores, 0.3)[1].tolist() == [0, 3]


def test_doctor_ops_check_passes():
    assert check_mmcv_ops() == "roi_align and nms correct"
