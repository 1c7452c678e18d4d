"""Run the probes on a frozen backbone: pick the probe images once, then measure any model on them.

A :class:`Prober` holds what stays fixed across probes (which training images form the kNN bank, which
val images are queried, the dense-probe images, the seeds), so probes of the same run -- or of two
backbones -- compare like with like. The kNN images go through the eval transform once and are kept in
memory (up to ``cache_mib``), so later probes cost forwards only. Probing leaves the model as it found
it: eval mode inside (no BatchNorm statistics move), no gradients to the backbone, explicit generators
only (the global RNG is not drawn from), and the train/eval mode restored afterwards. Its cost is the
wall clock and the FLOPs torch's ``FlopCounterMode`` counts (convolutions and matmuls, as the training
cost is counted) -- counted on the first probe only: the shapes never change, so neither do the FLOPs,
and the counter's per-op dispatch would double the probe's time.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.flop_counter import FlopCounterMode

from ..cost import forward_flops
from ..sections import TASKS
from .budget import ProbeCosts
from .dense import DenseSettings, evaluate_head, feature_indices, multiscale_features, train_head
from .dense_data import DenseSet, to_tensors
from .knn import KnnSettings, embed, knn_top1


def choose(n: int, count: int | None, seed: int) -> list[int]:
    """``count`` of ``range(n)`` drawn uniformly without replacement (sorted), or all of them."""
    if count is None or count >= n:
        return list(range(n))
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].tolist())


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no autograd for the duration; the previous train/eval mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def probe_costs(model: nn.Module, img_size: int, dense_size: tuple[int, int] | None, num_classes: int) -> ProbeCosts:
    """Per-image forward FLOPs (kNN at ``img_size``, dense at ``dense_size``) and the dense head's shape."""
    info = [model.feature_info[i] for i in feature_indices(model)] if dense_size else []
    return ProbeCosts(knn_image=forward_flops(model, (1, 3, img_size, img_size)),
                      dense_image=forward_flops(model, (1, 3, *dense_size)) if dense_size else 0.0,
                      channels=[f["num_chs"] for f in info], reductions=[f["reduction"] for f in info],
                      num_classes=num_classes)


class Prober:
    """kNN and/or dense probes on fixed data; ``prober(model)`` returns the metrics and their cost."""

    def __init__(self, tasks: Sequence[str], *, knn: KnnSettings | None = None, bank_set: Dataset | None = None,
                 query_set: Dataset | None = None, num_classes: int | None = None,
                 dense: DenseSettings | None = None, dense_train: DenseSet | None = None,
                 dense_val: DenseSet | None = None, batch_size: int = 64, workers: int = 0,
                 cache_mib: float = 1024):
        unknown = [t for t in tasks if t not in TASKS]
        if unknown or not tasks:
            raise ValueError(f"probe tasks must be a non-empty list of {', '.join(TASKS)}, got {list(tasks)}")
        self.tasks, self.batch_size, self.workers = list(tasks), batch_size, workers
        self.knn_settings, self.dense_settings = knn or KnnSettings(), dense or DenseSettings()
        self.cache_bytes, self._cache = cache_mib * 2**20, {}
        self._flops: float | None = None
        if "knn" in self.tasks:
            if bank_set is None or query_set is None or not num_classes:
                raise ValueError("the knn probe needs bank_set, query_set and num_classes")
            s = self.knn_settings
            self.bank = Subset(bank_set, choose(len(bank_set), s.bank, s.seed))
            self.queries = Subset(query_set, choose(len(query_set), s.queries, s.seed + 1))
            self.num_classes = num_classes
            self.prepare = getattr(bank_set, "normalize", None)  # uint8 items: normalised on the device
        if "dense" in self.tasks:
            if dense_train is None or dense_val is None or self.dense_settings.size is None:
                raise ValueError("the dense probe needs dense_train, dense_val and dense.size")
            self.dense_train, self.dense_val = dense_train, dense_val
            self._dense_tensors: tuple | None = None

    def _batches(self, name: str, dataset: Dataset) -> list | DataLoader:
        """The dataset's batches; kept in memory after the first pass when they fit ``cache_mib``."""
        if name in self._cache:
            return self._cache[name]
        # an explicit generator: iterating must not draw from the global RNG (training stays reproducible)
        loader = DataLoader(dataset, self.batch_size, shuffle=False, num_workers=self.workers,
                            generator=torch.Generator().manual_seed(0))
        first = dataset[0][0]
        if first.numel() * first.element_size() * len(dataset) > self.cache_bytes:
            return loader
        self._cache[name] = [(images, targets) for images, targets, *_ in loader]
        return self._cache[name]

    def describe(self) -> dict[str, Any]:
        """Settings and sample counts of each task (``None`` for tasks not run)."""
        out: dict[str, Any] = {"knn": None, "dense": None}
        if "knn" in self.tasks:
            s = self.knn_settings
            out["knn"] = {"k": s.k, "vote": s.vote, "temperature": s.temperature, "bank": len(self.bank),
                          "queries": len(self.queries), "seed": s.seed}
        if "dense" in self.tasks:
            s = self.dense_settings
            out["dense"] = {"train_images": len(self.dense_train), "val_images": len(self.dense_val),
                            "steps": s.steps, "batch_size": s.batch_size, "lr": s.lr, "size": list(s.size),
                            "seed": s.seed, "source": self.dense_train.source.rsplit("/", 1)[0]}
        return out

    def __call__(self, model: nn.Module) -> dict[str, Any]:
        """``{"knn_top1", "dense_miou", "knn", "dense", "probe_flops", "probe_wall_s"}`` for ``model``."""
        device = next(model.parameters()).device
        start = time.perf_counter()
        counter = FlopCounterMode(display=False) if self._flops is None else contextlib.nullcontext()
        result: dict[str, Any] = {"knn_top1": None, "dense_miou": None, **self.describe()}
        with counter, frozen(model):
            if "knn" in self.tasks:
                bank = embed(model, self._batches("bank", self.bank), device, self.prepare)
                queries = embed(model, self._batches("queries", self.queries), device, self.prepare)
                result["knn_top1"] = knn_top1(bank, queries, self.num_classes, self.knn_settings)
            if "dense" in self.tasks:
                result["dense_miou"], result["dense"]["classes"] = self._dense(model, device)
        if self._flops is None:
            self._flops = float(counter.get_total_flops())
        result.update(probe_flops=self._flops, probe_wall_s=time.perf_counter() - start)
        return result

    def _dense(self, model: nn.Module, device: torch.device) -> tuple[float, int]:
        s = self.dense_settings
        if self._dense_tensors is None:  # resized once; the same pixels for every probe
            self._dense_tensors = (to_tensors(self.dense_train, s.size), to_tensors(self.dense_val, s.size))
        (xt, yt), (xv, yv) = self._dense_tensors
        train_feats = multiscale_features(model, xt, self.batch_size)
        val_feats = multiscale_features(model, xv, self.batch_size)
        num_classes = self.dense_train.num_classes
        with torch.enable_grad():  # the head trains; the backbone's features are plain tensors
            head = train_head(train_feats, yt.to(device), num_classes, s)
        value, iou = evaluate_head(head, val_feats, yv.to(device), num_classes)
        return value, int((~iou.isnan()).sum())
