"""Datasets that return ``(image, target, index)``, their transforms, and input checks.

Four sources, chosen by ``data.type`` in a config:

* ``imagefolder``: ImageNet-style ``root/<train_dir>/<class>/*.jpg`` and ``root/<val_dir>/<class>/...``;
* ``cifar10`` / ``cifar100``: torchvision's on-disk format under ``root`` (never downloaded);
* ``listfile``: ImageNet-LT style text files of ``relative/path label`` lines, paths relative to ``root``;
* ``digits``: scikit-learn's handwritten digits (1797 8x8 images, shipped with the package), upsampled
  to a small RGB resolution with a fixed stratified train/val split -- the real dataset tests and the
  CPU demo use, no download needed.

Augmentation is timm's (random-resized crop, flip; single centre crop for evaluation). Random draws
are re-seeded per sample from ``(seed, epoch, index)``, so a sample's augmented view does not depend on
worker count, batch order or a resume in the middle of an epoch -- exact resume needs that.
Every problem with the input is raised as :class:`DataError` with one line naming it.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timm.data import create_transform
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CIFAR100, ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

DATASET_TYPES = ("imagefolder", "cifar10", "cifar100", "listfile", "digits")


class DataError(ValueError):
    """Bad data input; the message is one line naming the problem."""


def load_image(path: str) -> Image.Image:
    """Open an image as RGB, naming the file when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except Exception as exc:
        raise DataError(_unreadable(path, exc)) from exc


def _unreadable(path: str, exc: Exception) -> str:
    detail = type(exc).__name__ if path in str(exc) else f"{type(exc).__name__}: {exc}"
    return f"unreadable image: {path} ({detail})"


def _check_one(path: str, mode: str) -> str | None:
    try:
        with Image.open(path) as im:
            if mode == "full":
                im.load()
    except Exception as exc:
        return _unreadable(path, exc)
    return None


def verify_images(paths: Sequence[str], mode: str = "header", workers: int = 8) -> str | None:
    """Return the first problem among ``paths`` as one line, or None.

    ``mode`` is ``header`` (identify the format: cheap, catches non-images and missing files), ``full``
    (decode every pixel) or ``none``.
    """
    if mode == "none" or not paths:
        return None
    if mode not in ("header", "full"):
        raise DataError(f"data.verify must be 'header', 'full' or 'none', got {mode!r}")
    with ThreadPoolExecutor(workers) as pool:
        for problem in pool.map(lambda p: _check_one(p, mode), paths, chunksize=64):
            if problem:
                return problem
    return None


class AugSeed:
    """Per-sample augmentation randomness from (seed, epoch, index), isolated from the global RNGs.

    Inside ``with aug_seed(index):`` python's and torch's CPU generators are seeded for this sample;
    both are restored on exit, so a loader with ``num_workers=0`` leaves the training RNG untouched.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.epoch = 0

    @contextlib.contextmanager
    def __call__(self, index: int) -> Iterator[None]:
        s = ((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % (2**63)
        py_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            random.seed(s)  # timm's RandomResizedCropAndInterpolation draws from `random`
            torch.default_generator.manual_seed(s)  # torchvision's flip draws from torch
            try:
                yield
            finally:
                random.setstate(py_state)


class Indexed(Dataset):
    """Wrap a dataset of ``(image, target)`` to return ``(image, target, index)``."""

    def __init__(self, base: Dataset, targets: Sequence[int], num_classes: int,
                 transform: Callable | None = None, aug_seed: AugSeed | None = None):
        self.base, self.targets, self.num_classes = base, list(targets), num_classes
        self.transform, self.aug_seed = transform, aug_seed

    def set_epoch(self, epoch: int) -> None:
        if self.aug_seed is not None:
            self.aug_seed.epoch = epoch

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image, target = self.base[index]
        if self.transform is not None:
            if self.aug_seed is None:
                image = self.transform(image)
            else:
                with self.aug_seed(index):
                    image = self.transform(image)
        return image, target, index


class ListFile(Dataset):
    """ImageNet-LT style list: one ``relative/path label`` per line, paths relative to ``root``."""

    def __init__(self, root: str, list_file: str):
        lf = Path(list_file) if Path(list_file).is_absolute() else Path(root) / list_file
        if not lf.is_file():
            raise DataError(f"list file not found: {lf}")
        self.samples: list[tuple[str, int]] = []
        for no, line in enumerate(lf.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
                raise DataError(f"{lf}:{no}: expected 'path label' with a non-negative integer label, got {line!r}")
            self.samples.append((str(Path(root) / parts[0]), int(parts[1])))
        if not self.samples:
            raise DataError(f"list file {lf} lists no images")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, target = self.samples[i]
        return load_image(path), target


class Digits(Dataset):
    """scikit-learn's 8x8 handwritten digits as RGB PIL images of ``img_size`` pixels.

    The split is stratified and fixed (``random_state=0``, 25% val): 1347 train / 450 val images.
    """

    def __init__(self, split: str, img_size: int = 32):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        train_idx, val_idx = train_test_split(np.arange(len(digits.target)), test_size=0.25,
                                              stratify=digits.target, random_state=0)
        idx = np.sort(train_idx if split == "train" else val_idx)
        self.indices = idx  # into load_digits()
        pixels = (digits.images[idx] * (255.0 / 16.0)).round().astype(np.uint8)
        self.images = [Image.fromarray(p).resize((img_size, img_size), Image.BICUBIC).convert("RGB")
                       for p in pixels]
        self.targets = digits.target[idx].tolist()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.images[i], self.targets[i]


def build_transform(data: dict, train: bool) -> Callable:
    """timm's standard transform: random-resized crop + flip for training, one centre crop for eval."""
    size = int(data.get("img_size", 224))
    if train:
        return create_transform(size, is_training=True, scale=tuple(data.get("scale", (0.08, 1.0))),
                                hflip=float(data.get("hflip", 0.5)), color_jitter=None,
                                interpolation=data.get("interpolation", "bilinear"))
    return create_transform(size, is_training=False, crop_pct=float(data.get("crop_pct", 0.875)),
                            interpolation=data.get("interpolation", "bilinear"))


def _image_folder(path: Path) -> ImageFolder:
    if not path.is_dir():
        raise DataError(f"data folder not found: {path}")
    try:
        ds = ImageFolder(str(path), loader=load_image, allow_empty=True)
    except FileNotFoundError as exc:
        raise DataError(f"no class folders with images under {path}") from exc
    counts = np.bincount(np.asarray(ds.targets, dtype=np.int64), minlength=len(ds.classes))
    if counts.sum() == 0:
        raise DataError(f"no images under {path} (extensions: {', '.join(IMG_EXTENSIONS)})")
    empty = [ds.classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"class folder {path / empty[0]} has no images"
                        + (f" (and {len(empty) - 1} more empty classes)" if len(empty) > 1 else ""))
    return ds


def _cifar(kind: str, root: Path, train: bool) -> Dataset:
    if not root.is_dir():
        raise DataError(f"data root not found: {root}")
    cls = CIFAR10 if kind == "cifar10" else CIFAR100
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError as exc:
        raise DataError(f"{kind} data not found or corrupted under {root} "
                        f"(expected torchvision's {cls.base_folder} folder)") from exc


def _source(data: dict, split: str) -> tuple[Dataset, list[int], int, list[str]]:
    """Return (dataset of (PIL image, target), targets, num_classes, image paths to verify)."""
    kind = data.get("type", "imagefolder")
    if kind not in DATASET_TYPES:
        raise DataError(f"data.type must be one of {', '.join(DATASET_TYPES)}, got {kind!r}")
    if kind == "digits":
        ds = Digits(split, int(data.get("img_size", 32)))
        return ds, ds.targets, 10, []
    if not data.get("root"):
        raise DataError(f"data.root is not set (needed for data.type={kind!r})")
    root = Path(data["root"])
    if kind in ("cifar10", "cifar100"):
        ds = _cifar(kind, root, split == "train")
        return ds, list(ds.targets), len(ds.classes), []
    if not root.is_dir():
        raise DataError(f"data root not found: {root}")
    if kind == "imagefolder":
        ds = _image_folder(root / data.get(f"{split}_dir", split))
        return ds, list(ds.targets), len(ds.classes), [p for p, _ in ds.samples]
    ds = ListFile(str(root), data.get(f"{split}_list", f"{split}.txt"))
    targets = [t for _, t in ds.samples]
    return ds, targets, int(data.get("num_classes") or max(targets) + 1), [p for p, _ in ds.samples]


def build_dataset(data: dict, split: str, seed: int = 0, rank: int = 0, world_size: int = 1) -> Indexed:
    """Build the ``train`` or ``val`` split described by a config's ``data`` dict, checking its images.

    Each rank checks every ``world_size``-th image; the caller gathers the problems so that every rank
    stops with the same message (see ``engine.first_error``).
    """
    base, targets, num_classes, paths = _source(data, split)
    problem = verify_images(paths[rank::world_size], data.get("verify", "header"))
    if problem:
        raise DataError(problem)
    train = split == "train"
    return Indexed(base, targets, num_classes, build_transform(data, train),
                   AugSeed(seed) if train else None)
