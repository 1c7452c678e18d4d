"""Datasets return (image, target, index); digits split; augmentation keyed by (seed, epoch, index)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pretrain.data import (
    DIGITS_FILE,
    DataError,
    Digits,
    build_dataset,
    build_transform,
    digits_from_scikit_learn,
    verify_images,
)

DIGITS = dict(type="digits", img_size=32, batch_size=8, scale=(0.5, 1.0), hflip=0.0, crop_pct=1.0)


def test_digits_split_is_fixed_stratified_and_disjoint():
    train, val = Digits("train"), Digits("val")
    assert (len(train), len(val)) == (1347, 450)
    assert Digits("train").targets == train.targets  # deterministic
    counts_train, counts_val = np.bincount(train.targets), np.bincount(val.targets)
    assert (counts_val >= 43).all() and (np.abs(counts_train / 1347 - counts_val / 450) < 0.01).all()
    assert sorted(np.concatenate([train.indices, val.indices]).tolist()) == list(range(1797))  # a partition
    assert train.images[0].size == (32, 32) and train.images[0].mode == "RGB"


def test_the_shipped_digits_are_scikit_learns_and_their_split():
    """``digits.npz`` (read by every run instead of importing scikit-learn) holds exactly what
    scikit-learn's ``load_digits`` and the stratified split give; the images built from it too."""
    from sklearn.datasets import load_digits

    with np.load(DIGITS_FILE) as shipped:
        assert set(shipped.files) == {"images", "targets", "train", "val"}
        for key, value in digits_from_scikit_learn().items():
            assert shipped[key].dtype == value.dtype and np.array_equal(shipped[key], value), key
    sk = load_digits()
    val = Digits("val", img_size=8)
    pixels = (sk.images[val.indices] * (255.0 / 16.0)).round().astype(np.uint8)  # the former way, from sklearn
    assert val.targets == sk.target[val.indices].tolist()
    assert all(np.array_equal(np.asarray(img)[..., 0], p) for img, p in zip(val.images, pixels, strict=True))


def test_items_are_image_target_index_and_augmentation_is_keyed():
    ds = build_dataset(DIGITS, "train", seed=0)
    img, target, index = ds[5]
    assert img.shape == (3, 32, 32) and index == 5 and target == ds.targets[5]
    ds.set_epoch(1)
    a = ds[7][0]
    torch.manual_seed(123)
    random.seed(7)
    before = (torch.get_rng_state(), random.getstate())
    b = ds[7][0]
    assert torch.equal(a, b)  # same (seed, epoch, index) -> same view, whatever the global RNG holds
    assert torch.equal(before[0], torch.get_rng_state()) and before[1] == random.getstate()  # untouched
    ds.set_epoch(2)
    assert not torch.equal(ds[7][0], a)  # a new epoch draws a new view
    other_seed = build_dataset(DIGITS, "train", seed=1)
    other_seed.set_epoch(1)
    assert not torch.equal(other_seed[7][0], a)
    val = build_dataset(DIGITS, "val")
    assert torch.equal(val[3][0], val[3][0]) and val[3][2] == 3


def test_transforms_are_the_standard_ones():
    train = build_transform({"img_size": 224}, train=True)
    names = [type(t).__name__ for t in train.transforms]
    assert names[:2] == ["RandomResizedCropAndInterpolation", "RandomHorizontalFlip"]
    assert train.transforms[0].scale == (0.08, 1.0)  # ImageNet default: 8-100% crops
    assert "ColorJitter" not in names
    val = build_transform({"img_size": 224}, train=False)
    assert [type(t).__name__ for t in val.transforms][:2] == ["Resize", "CenterCrop"]
    assert val.transforms[0].size == 256  # 224 / 0.875: one centre crop


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 10, 3), value, dtype=np.uint8)).save(path)


def test_image_folder_and_list_file(tmp_path):
    for split in ("train", "val"):
        for c, cls in enumerate(("cat", "dog")):
            for i in range(3):
                _png(tmp_path / split / cls / f"{i}.png", 40 * c + i)
    cfg = dict(type="imagefolder", root=str(tmp_path), img_size=16, crop_pct=1.0)
    ds = build_dataset(cfg, "train")
    assert len(ds) == 6 and ds.num_classes == 2 and ds[4][1:] == (1, 4)
    lines = ["train/dog/0.png 1", "train/cat/2.png 0", "", "train/dog/1.png 1"]
    (tmp_path / "lt_train.txt").write_text("\n".join(lines))
    (tmp_path / "lt_val.txt").write_text("val/cat/0.png 0\nval/dog/0.png 1\n")
    lt = dict(type="listfile", root=str(tmp_path), train_list="lt_train.txt", val_list="lt_val.txt", img_size=16)
    ds = build_dataset(lt, "train")
    assert [ds[i][1:] for i in range(len(ds))] == [(1, 0), (0, 1), (1, 2)] and ds.num_classes == 2
    (tmp_path / "bad.txt").write_text("train/dog/0.png one\n")
    with pytest.raises(DataError, match=r"bad.txt:1: expected 'path label'"):
        build_dataset({**lt, "train_list": "bad.txt"}, "train")
    (tmp_path / "missing.txt").write_text("train/dog/9.png 1\n")
    with pytest.raises(DataError, match=r"unreadable image: .*train/dog/9.png"):
        build_dataset({**lt, "train_list": "missing.txt"}, "train")
    with pytest.raises(DataError, match="list file not found"):
        build_dataset({**lt, "train_list": "nope.txt"}, "train")


def test_cifar_needs_torchvisions_files(tmp_path):
    with pytest.raises(DataError, match=r"cifar10 data not found or corrupted under .*cifar-10-batches-py"):
        build_dataset(dict(type="cifar10", root=str(tmp_path), img_size=32), "train")
    with pytest.raises(DataError, match="data.root is not set"):
        build_dataset(dict(type="cifar100", img_size=32), "train")


def test_verify_images_names_the_first_bad_file(tmp_path):
    good = tmp_path / "good.png"
    _png(good, 1)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-30])
    assert verify_images([str(good)] * 3, "full") is None
    assert verify_images([str(good), str(truncated)], "header") is None  # the header alone is intact
    assert "truncated.png" in verify_images([str(good), str(truncated)], "full")
    assert verify_images([str(truncated)], "none") is None
