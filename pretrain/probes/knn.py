"""kNN probe: top-1 of a cosine-similarity k-nearest-neighbour classifier on frozen pooled features.

The memory bank is the (eval-transformed) training set, the queries the validation set. Votes are
weighted as in Wu et al. 2018 (instance discrimination) and DINO's ``eval_knn``: each of the k nearest
neighbours votes for its class with ``exp(cos / T)``, ``T = 0.07``; ``vote='majority'`` counts one vote
per neighbour instead (ties go to the class with the larger summed similarity).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..sections import KnnSettings


def knn_classify(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
                 k: int = 20, temperature: float = 0.07, vote: str = "weighted", chunk: int = 1024) -> torch.Tensor:
    """Predicted class of each query row; ``bank`` and ``queries`` are L2-normalised feature rows."""
    k = min(k, len(bank))
    preds = []
    for q in queries.split(chunk):
        sims, idx = (q @ bank.T).topk(k, dim=1)
        labels = bank_labels[idx]
        scores = torch.zeros(len(q), num_classes, dtype=sims.dtype, device=sims.device)
        if vote == "weighted":
            scores.scatter_add_(1, labels, (sims / temperature).exp())
        else:
            scores.scatter_add_(1, labels, torch.ones_like(sims))
            tie = torch.zeros_like(scores).scatter_add_(1, labels, sims + 1.0)  # in [0, 2k]
            scores += tie / (2 * k + 1)  # < 1: only reorders classes with equal counts
        preds.append(scores.argmax(1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def embed(model: nn.Module, batches: Iterable, device: torch.device,
          prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised pre-logits features and labels of every ``(image, target, ...)`` batch (eval mode).

    ``prepare`` turns a batch on the device into model input (e.g. the uint8 pipeline's normalisation).
    """
    feats, labels = [], []
    for images, targets, *_ in batches:
        images = images.to(device, non_blocking=True)
        x = model.forward_features(prepare(images) if prepare else images)
        feats.append(F.normalize(model.forward_head(x, pre_logits=True).float().flatten(1), dim=1))
        labels.append(targets.to(device))
    return torch.cat(feats), torch.cat(labels)


def knn_top1(bank: tuple[torch.Tensor, torch.Tensor], queries: tuple[torch.Tensor, torch.Tensor],
             num_classes: int, settings: KnnSettings) -> float:
    """Top-1 (%) of the kNN classifier on ``queries`` = (features, labels) against ``bank``."""
    pred = knn_classify(bank[0], bank[1], queries[0], num_classes, settings.k, settings.temperature, settings.vote)
    return 100.0 * (pred == queries[1]).float().mean().item()
