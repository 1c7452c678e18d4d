"""Each upstream reference model builds from the installed toolbox's own config and runs one forward
(``test_step``: preprocessing, backbone, neck, heads, post-processing) on the CPU."""
import numpy as np
import pytest
import torch

from transfer.mm.reference import (
    REFERENCE_CONFIGS,
    build_reference_model,
    load_reference_config,
    toolbox_config_path,
)


def image(h: int, w: int) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def det_batch(h=256, w=320):
    from mmdet.structures import DetDataSample

    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), pad_shape=(h, w))
    return dict(inputs=[image(h, w)], data_samples=[DetDataSample(metainfo=meta)])


def pose_batch(cfg, h=256, w=192):
    from mmpose.structures import PoseDataSample

    meta = dict(input_size=(w, h), input_center=np.array([w / 2, h / 2]), input_scale=np.array([w, h], dtype=float), img_shape=(h, w),
                ori_shape=(h, w), flip_indices=cfg.model.get("test_cfg", {}).get("flip_indices")
                or [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
    from mmengine.structures import InstanceData

    sample = PoseDataSample(metainfo=meta)
    # Top-down: the person box the crop came from (here the whole crop), mapped back in post-processing.
    sample.gt_instances = InstanceData(bboxes=np.array([[0.0, 0.0, w, h]]), bbox_scores=np.ones(1))
    return dict(inputs=[image(h, w)], data_samples=[sample])


def seg_batch(h=256, w=256):
    from mmseg.structures import SegDataSample

    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])
    return dict(inputs=[image(h, w)], data_samples=[SegDataSample(metainfo=meta)])


def test_reference_configs_use_cpu_norms():
    from mmengine.config import Config

    upstream = Config.fromfile(str(toolbox_config_path(*REFERENCE_CONFIGS["seg"][:2])))
    assert "SyncBN" in repr(upstream.model.to_dict())  # upstream PSPNet uses SyncBN ...
    assert "SyncBN" not in repr(load_reference_config("seg").model.to_dict())  # ... ours does not


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(REFERENCE_CONFIGS))
def test_reference_model_builds_and_runs_one_forward(task):
    model, cfg = build_reference_model(task)
    assert sum(p.numel() for p in model.parameters()) > 10e6  # a full R50-based model, not a stub
    batch = {"det": det_batch, "ins": det_batch, "seg": seg_batch}.get(task, lambda: pose_batch(cfg))()
    with torch.no_grad():
        (out,) = model.test_step(batch)
    if task in ("det", "ins"):
        pred = out.pred_instances
        assert pred.bboxes.ndim == 2 and pred.bboxes.shape[1] == 4
        assert len(pred.scores) == len(pred.labels) == len(pred.bboxes)
        if task == "ins":
            assert pred.masks.shape[1:] == (256, 320)
    elif task == "pose":
        keypoints = out.pred_instances.keypoints
        assert keypoints.shape == (1, 17, 2)
        assert out.pred_instances.keypoint_scores.shape == (1, 17)
    else:
        seg = out.pred_sem_seg.data
        assert seg.shape == (1, 256, 256)
        assert 0 <= int(seg.min()) and int(seg.max()) < 19
