"""The uint8 loader: workers collate uint8, the batch is normalised on the device -- bitwise the old pipeline."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from pretrain.data import BatchNormalize, build_dataset, normalizer

DIGITS = dict(type="digits", img_size=32, batch_size=32, scale=(0.5, 1.0), hflip=0.5, crop_pct=1.0)


def _batches(ds, workers: int, epoch: int):
    ds.set_epoch(epoch)
    loader = DataLoader(ds, batch_size=64, shuffle=False, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    return list(loader)


@pytest.mark.parametrize("split, workers", [("train", 0), ("train", 2), ("val", 0)])
def test_uint8_batches_normalised_on_the_device_equal_the_float_pipeline(split, workers):
    """Every digits image of two epochs (random crops and flips drawn per sample): the float32 batch
    of ToTensor + Normalize in the workers and the uint8 batch normalised afterwards are bitwise equal."""
    old = build_dataset(DIGITS, split, seed=3)
    new = build_dataset(DIGITS, split, seed=3, uint8=True)
    assert old.normalize is None and new.normalize is not None
    for epoch in (1, 2):
        compared = 0
        for (a, ta, ia), (b, tb, ib) in zip(_batches(old, 0, epoch), _batches(new, workers, epoch), strict=True):
            assert a.dtype == torch.float32 and b.dtype == torch.uint8
            assert torch.equal(ta, tb) and torch.equal(ia, ib)
            assert torch.equal(new.normalize(b), a)  # bitwise, not allclose
            compared += len(a)
        assert compared == len(old)


def test_normaliser_uses_the_configured_statistics_and_refuses_float_input():
    stats = dict(mean=(0.5, 0.25, 0.0), std=(0.5, 0.5, 1.0))
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    y = normalizer(stats)(x)
    expect = (x.float() / 255 - torch.tensor(stats["mean"]).view(1, 3, 1, 1)) / torch.tensor(stats["std"]).view(1, 3, 1, 1)
    assert y.dtype == torch.float32 and torch.equal(y, expect)
    with pytest.raises(TypeError, match="uint8"):
        BatchNormalize()(x.float())
