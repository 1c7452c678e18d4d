"""The ``probe`` config section and what turns it (plus the run's data and model) into a :class:`Prober`.

    probe = dict(every=2, tasks=['knn', 'dense'],
                 budget=0.05,                        # all probes <= 5 % of the run's planned training FLOPs
                 knn=dict(k=20, vote='weighted'),     # + bank / queries / seed / root (ImageFolder train/, val/)
                 dense=dict(root='data/tiny/cityscapes', steps=150))  # + size / train_images / val_images / lr

Without ``knn.root`` the kNN probe queries the run's own validation set against a bank of its training
images (eval transform). ``dense.root`` is a folder in the Cityscapes layout (see
:mod:`pretrain.probes.dense_data`), by default the tiny set ``tools/make_tiny_data.py data/tiny`` writes;
``dense.size`` defaults to ``(2 r, 4 r)`` for training resolution ``r``.
"""
from __future__ import annotations

import copy
from typing import Any

from ..data import build_dataset, build_transform
from ..errors import ConfigError
from ..sections import ProbeConfig
from .budget import ProbeBudgetError, plan_probe, probe_epochs
from .dense_data import CITYSCAPES_CLASSES, ProbeDataError, cityscapes_pairs, read_pairs
from .runner import Prober, choose, probe_costs


def eval_view(dataset, data: dict):
    """The same images through the eval transform (centre crop, no augmentation): the kNN bank's view."""
    view = copy.copy(dataset)
    view.transform = build_transform(data, train=False, uint8=getattr(dataset, "normalize", None) is not None)
    view.aug_seed = None
    return view


def knn_sets(cfg: ProbeConfig, data: dict, train_set=None, val_set=None):
    """(bank set, query set, classes): a ``knn.root`` ImageFolder, or the run's own train/val sets."""
    root = cfg.knn.get("root")
    if root:
        folder = dict(type="imagefolder", root=root, train_dir="train", val_dir="val",
                      img_size=data.get("img_size", 224), crop_pct=data.get("crop_pct", 0.875), verify="header")
        bank, queries = build_dataset(folder, "train"), build_dataset(folder, "val")
        if bank.base.classes != queries.base.classes:  # ImageFolder numbers classes by sorted folder name
            odd = sorted(set(bank.base.classes) ^ set(queries.base.classes))
            raise ConfigError(f"probe.knn.root {root}: train/ and val/ hold different class folders "
                              f"({odd[0]!r} is in only one of them)")
        return eval_view(bank, folder), queries, bank.num_classes
    return eval_view(train_set, data), val_set, train_set.num_classes


def build_prober(cfg: ProbeConfig, model, data: dict, *, train_set=None, val_set=None,
                 run_train_flops: float | None = None, epochs: int = 1, world_size: int = 1,
                 workers: int = 0) -> tuple[Prober, dict[str, Any]]:
    """The run's :class:`Prober` with its sample counts fitted to the budget, and the plan that fixed them.

    ``run_train_flops`` is the run's planned training FLOPs (all ranks). Under DDP the probe runs on
    rank 0 while the others wait, so each probe gets a per-rank share (``/ world_size``): its wall time,
    not only its FLOPs, stays inside the budget. Raises :class:`ConfigError` for data or budget problems.
    """
    img_size = int(data.get("img_size", 224))
    knn, dense = cfg.knn_settings(), cfg.dense_settings(img_size)
    try:
        bank_set = query_set = num_classes = None
        if "knn" in cfg.tasks:
            bank_set, query_set, num_classes = knn_sets(cfg, data, train_set, val_set)
        pairs = {}
        dense_classes = int(cfg.dense.get("num_classes", CITYSCAPES_CLASSES))
        if "dense" in cfg.tasks:
            pairs = {split: cityscapes_pairs(cfg.dense_root, split) for split in ("train", "val")}
        plan: dict[str, Any] = {"probe_epochs": probe_epochs(epochs, cfg.every), "budget_flops": None}
        if cfg.budget is not None and run_train_flops:
            plan["budget_flops"] = cfg.budget * run_train_flops
            per_probe = plan["budget_flops"] / len(plan["probe_epochs"]) / world_size
            costs = probe_costs(model, img_size, dense.size if "dense" in cfg.tasks else None, dense_classes)
            knn, dense, plan["per_probe_flops"] = plan_probe(
                list(cfg.tasks), per_probe, costs, knn, dense, len(bank_set or ()), len(query_set or ()),
                (len(pairs.get("train", ())), len(pairs.get("val", ()))))
        dense_train = dense_val = None
        if "dense" in cfg.tasks:
            dense_train = read_pairs([pairs["train"][i] for i in choose(len(pairs["train"]), dense.train_images, dense.seed)],
                                     dense_classes, f"{cfg.dense_root}/train")
            dense_val = read_pairs([pairs["val"][i] for i in choose(len(pairs["val"]), dense.val_images, dense.seed + 1)],
                                   dense_classes, f"{cfg.dense_root}/val")
    except (ProbeDataError, ProbeBudgetError) as exc:
        raise ConfigError(f"probe: {exc}") from None
    prober = Prober(cfg.tasks, knn=knn, bank_set=bank_set, query_set=query_set, num_classes=num_classes,
                    dense=dense, dense_train=dense_train, dense_val=dense_val,
                    batch_size=cfg.batch_size or int(data.get("batch_size", 64)), workers=workers,
                    cache_mib=cfg.cache_mib)
    return prober, plan
