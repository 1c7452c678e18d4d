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

With ``uint8=True`` the transforms stop at a uint8 tensor (timm's prefetcher transforms): loader
workers decode, augment and collate uint8 (a quarter of the bytes through shared and pinned memory) and
the trainer normalises each batch on its device with :class:`BatchNormalize`, with the same float32
operations as ``ToTensor`` + ``Normalize`` -- the normalised batch is bitwise the one the float pipeline
gives.

An image whose header is valid but whose body is corrupt passes the start-up check and fails when a
worker decodes it. ``data.on_bad_image='fail'`` (default) raises :class:`BadImageError` naming the file
(one line, also when it crosses a worker process); ``'substitute'`` trains the next readable sample in
its place (same on every rank and across resumes), logs each bad file once on stderr and fails past
``data.max_bad_images`` distinct bad files on a rank.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from torch.utils.data import Dataset, default_collate, get_worker_info
from torchvision.datasets import CIFAR10, CIFAR100, ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

DATASET_TYPES = ("imagefolder", "cifar10", "cifar100", "listfile", "digits")
BAD_IMAGE_POLICIES = ("fail", "substitute")
DEFAULT_MAX_BAD_IMAGES = 10


class DataError(ValueError):
    """Bad data input; the message is one line naming the problem."""


class BadImageError(DataError):
    """An image that cannot be decoded.

    Raised in a DataLoader worker, torch re-raises it in the main process as
    ``BadImageError("Caught BadImageError in DataLoader worker ...\nOriginal Traceback ...")``; the
    original one-line message is recovered from that traceback's last line.
    """

    def __init__(self, message: str):
        if message.startswith(f"Caught {type(self).__name__} "):
            last = message.rstrip().splitlines()[-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


def load_image(path: str) -> Image.Image:
    """Open an image as RGB, naming the file when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except Exception as exc:
        raise BadImageError(_unreadable(path, exc)) from exc


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

    Inside ``with aug_seed(index):`` python's, NumPy's (timm's RandAugment picks its ops with
    ``np.random.choice``) and torch's CPU generators are seeded for this sample; in the main process all
    three are restored on exit, so a loader with ``num_workers=0`` leaves the
    training RNG untouched. A loader worker's generators serve nothing but these draws, so there the
    save and restore (a few percent of a small image's loading time) are skipped.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.epoch = 0

    @contextlib.contextmanager
    def __call__(self, index: int) -> Iterator[None]:
        s = ((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % (2**63)
        if get_worker_info() is not None:
            random.seed(s)
            np.random.seed(s % 2**32)
            torch.default_generator.manual_seed(s)
            yield
            return
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(s)  # timm's RandomResizedCropAndInterpolation draws from `random`
            np.random.seed(s % 2**32)  # timm's RandAugment chooses its ops with np.random
            torch.default_generator.manual_seed(s)  # torchvision's flip draws from torch
            try:
                yield
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class BatchNormalize:
    """``(x / 255 - mean) / std`` of a uint8 ``(N, C, H, W)`` batch, as float32 on the batch's device.

    The same three float32 operations, in the same order, as torchvision's ``ToTensor`` followed by
    ``Normalize`` per sample, so the result is bitwise what the float pipeline gives (timm's
    ``PrefetchLoader`` folds the 1/255 into mean and std instead, which rounds differently).
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD):
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(tuple(std), dtype=torch.float32).view(1, -1, 1, 1)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"BatchNormalize expects a uint8 batch, got {images.dtype}")
        if images.device not in self._on:  # copy the constants to a device once, not every step
            self._on[images.device] = (self.mean.to(images.device), self.std.to(images.device))
        mean, std = self._on[images.device]
        return images.float().div_(255).sub_(mean).div_(std)


def collate_indexed(batch: Sequence[tuple[torch.Tensor, int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Collate ``(image, target, index)`` items: stacked images, then targets and indices (int64).

    Targets and indices are two rows of one tensor: a batch leaves a loader worker as one shared-memory
    handle per storage, and each costs the main process a socket round trip to the worker, so this is
    one round trip fewer per batch than ``default_collate`` (measurable at small batches, bench/vs_timm.py).
    """
    images = default_collate([item[0] for item in batch])
    rows = torch.tensor([[item[1] for item in batch], [item[2] for item in batch]], dtype=torch.int64)
    return images, rows[0], rows[1]


class BadImages:
    """The distinct unreadable images one rank met, shared by its loader workers, at most ``limit``.

    Workers are separate processes (re-created every epoch), so the record lives in shared memory
    created by the main process; a lock keeps two workers from taking the same slot.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.seen = torch.full((limit + 1,), -1, dtype=torch.int64).share_memory_()
        self.lock = multiprocessing.Lock()

    def add(self, index: int) -> tuple[bool, int]:
        """Record ``index``; return (whether it is new, how many distinct bad images so far)."""
        with self.lock:
            known = self.seen[self.seen >= 0]
            if bool((known == index).any()):
                return False, known.numel()
            if known.numel() < len(self.seen):
                self.seen[known.numel()] = index
            return True, known.numel() + 1

    def indices(self) -> list[int]:
        return [i for i in self.seen.tolist() if i >= 0]


class Indexed(Dataset):
    """Wrap a dataset of ``(image, target)`` to return ``(image, target, index)``."""

    def __init__(self, base: Dataset, targets: Sequence[int], num_classes: int,
                 transform: Callable | None = None, aug_seed: AugSeed | None = None,
                 on_bad_image: str = "fail", max_bad_images: int = DEFAULT_MAX_BAD_IMAGES,
                 normalize: BatchNormalize | None = None):
        self.base, self.targets, self.num_classes = base, list(targets), num_classes
        self.transform, self.aug_seed = transform, aug_seed
        self.on_bad_image = on_bad_image
        self.bad = BadImages(max_bad_images) if on_bad_image == "substitute" else None
        self.normalize = normalize  # set when items are uint8: what turns a batch into model input

    def set_epoch(self, epoch: int) -> None:
        if self.aug_seed is not None:
            self.aug_seed.epoch = epoch

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image, target = self._load(index)
        if self.transform is not None:
            if self.aug_seed is None:
                image = self.transform(image)
            else:
                with self.aug_seed(index):
                    image = self.transform(image)
        return image, target, index

    def _load(self, index: int):
        """``base[index]``, or under ``on_bad_image='substitute'`` the next readable sample after it.

        The replacement depends only on the index and on which files are bad, so every rank and every
        resume trains the same one; its own target comes with it, the index stays the one scheduled.
        """
        try:
            return self.base[index]
        except BadImageError as exc:
            if self.bad is None:
                raise
            error = exc
        for step in range(1, len(self) + 1):
            new, count = self.bad.add((index + step - 1) % len(self))
            if count > self.bad.limit:
                raise BadImageError(f"{error} -- more than data.max_bad_images={self.bad.limit} "
                                    "unreadable images on this rank")
            if new:
                print(f"warning: {error}; substituted by the next readable image "
                      f"({count} of at most data.max_bad_images={self.bad.limit})", file=sys.stderr, flush=True)
            try:
                return self.base[(index + step) % len(self)]
            except BadImageError as exc:
                error = exc
        raise BadImageError(f"{error} -- no readable image left to substitute")


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


DIGITS_FILE = Path(__file__).with_name("digits.npz")


def digits_from_scikit_learn() -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits (pixel values 0-16) and the fixed split, as ``digits.npz`` holds them.

    The split is stratified and fixed (``random_state=0``, 25% val). ``python -m pretrain.data`` writes
    the file; a test checks it equals this. (Shipped so that a run does not import scikit-learn, ~1 s of
    every pre-training's start.)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train_idx, val_idx = train_test_split(np.arange(len(digits.target)), test_size=0.25,
                                          stratify=digits.target, random_state=0)
    return {"images": digits.images.astype(np.uint8), "targets": digits.target.astype(np.int64),
            "train": np.sort(train_idx), "val": np.sort(val_idx)}


class Digits(Dataset):
    """scikit-learn's 8x8 handwritten digits as RGB PIL images of ``img_size`` pixels, read from the
    shipped ``digits.npz`` (see :func:`digits_from_scikit_learn`): 1347 train / 450 val images.
    """

    def __init__(self, split: str, img_size: int = 32):
        with np.load(DIGITS_FILE) as digits:
            idx, images, targets = digits["train" if split == "train" else "val"], digits["images"], digits["targets"]
        self.indices = idx  # into load_digits()
        pixels = (images[idx].astype(np.float64) * (255.0 / 16.0)).round().astype(np.uint8)
        self.images = [Image.fromarray(p).resize((img_size, img_size), Image.BICUBIC).convert("RGB")
                       for p in pixels]
        self.targets = targets[idx].tolist()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.images[i], self.targets[i]


def build_transform(data: dict, train: bool, uint8: bool = False) -> Callable:
    """timm's ``create_transform``: random-resized crop, flip and the config's augmentation (RandAugment,
    colour jitter, ...) for training at ``img_size``; one centre crop for eval at ``test_size``.

    ``uint8=True`` ends at a uint8 tensor (timm's ``use_prefetcher`` transforms, the same random draws);
    :func:`normalizer` gives what then turns a batch into model input on the device, and random erasing
    then runs on that batch (:func:`batch_random_erasing`), as timm's prefetcher does.
    """
    interpolation = data.get("interpolation", "bilinear")
    common = dict(use_prefetcher=uint8, mean=tuple(data.get("mean", IMAGENET_DEFAULT_MEAN)),
                  std=tuple(data.get("std", IMAGENET_DEFAULT_STD)))
    if train:
        ratio = data.get("ratio")
        return create_transform(int(data.get("img_size", 224)), is_training=True,
                                scale=tuple(data.get("scale", (0.08, 1.0))),
                                ratio=tuple(ratio) if ratio is not None else None,
                                hflip=float(data.get("hflip", 0.5)), vflip=float(data.get("vflip", 0.0)),
                                color_jitter=data.get("color_jitter"), auto_augment=data.get("auto_augment"),
                                interpolation=data.get("train_interpolation") or interpolation, **common)
    size = int(data.get("test_size") or data.get("img_size", 224))
    return create_transform(size, is_training=False, crop_pct=float(data.get("crop_pct", 0.875)),
                            interpolation=interpolation, **common)


def batch_random_erasing(data: dict, device: torch.device) -> Callable | None:
    """timm's ``RandomErasing`` on a normalised device batch (``data.re_prob``, ``re_mode``, ``re_count``),
    or None when off. Its draws come from python's ``random`` and torch's generator of ``device``: the
    trainer's per-rank streams, checkpointed, so a resumed run erases the same boxes."""
    prob = float(data.get("re_prob") or 0.0)
    if prob <= 0:
        return None
    from timm.data.random_erasing import RandomErasing

    return RandomErasing(probability=prob, mode=data.get("re_mode") or "const",
                         max_count=int(data.get("re_count") or 1), device=device)


def normalizer(data: dict) -> BatchNormalize:
    """The per-batch normalisation matching :func:`build_transform` for a config's ``data`` dict."""
    return BatchNormalize(data.get("mean", IMAGENET_DEFAULT_MEAN), data.get("std", IMAGENET_DEFAULT_STD))


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


def _bad_image_policy(data: dict) -> tuple[str, int]:
    policy = data.get("on_bad_image", "fail")
    if policy not in BAD_IMAGE_POLICIES:
        raise DataError(f"data.on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {policy!r}")
    limit = data.get("max_bad_images", DEFAULT_MAX_BAD_IMAGES)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise DataError(f"data.max_bad_images must be a non-negative integer, got {limit!r}")
    return policy, limit


def build_dataset(data: dict, split: str, seed: int = 0, rank: int = 0, world_size: int = 1,
                  uint8: bool = False) -> Indexed:
    """Build the ``train`` or ``val`` split described by a config's ``data`` dict, checking its images.

    Each rank checks every ``world_size``-th image; the caller gathers the problems so that every rank
    stops with the same message (see ``engine.first_error``). With ``uint8`` the items are uint8 tensors
    and the dataset's ``normalize`` turns a batch of them into model input.
    """
    policy, limit = _bad_image_policy(data)
    base, targets, num_classes, paths = _source(data, split)
    problem = verify_images(paths[rank::world_size], data.get("verify", "header"))
    if problem:
        raise DataError(problem)
    train = split == "train"
    return Indexed(base, targets, num_classes, build_transform(data, train, uint8),
                   AugSeed(seed) if train else None, on_bad_image=policy, max_bad_images=limit,
                   normalize=normalizer(data) if uint8 else None)


if __name__ == "__main__":  # python -m pretrain.data: (re)write digits.npz from scikit-learn
    from dar_common.workdir import atomic_path

    with atomic_path(DIGITS_FILE) as tmp, open(tmp, "wb") as out:
        np.savez_compressed(out, **digits_from_scikit_learn())
    print(f"wrote {DIGITS_FILE} ({DIGITS_FILE.stat().st_size} bytes)")
