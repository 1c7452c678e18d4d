"""A side-effect-free scoring forward: per-sample losses of a batch at a lower resolution, every model
state (parameters, buffers, train/eval flags, RNG) left exactly as it was. Used by the step-level
methods that score a loaded batch before training on part of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LossFn", "downsample", "score_losses", "scoring_mode"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def scoring_mode(model: nn.Module) -> Iterator[None]:
    """Batch-statistics normalisation, no dropout/drop-path; every flag and buffer restored bit-exactly."""
    flags = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
        yield
    finally:
        with torch.no_grad():
            for buf, saved in buffers:
                buf.copy_(saved)
        for m, training in flags:
            m.training = training


def downsample(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Shorter side to ``resolution``, antialiased bilinear (no-op when already that small)."""
    h, w = images.shape[-2:]
    if min(h, w) <= resolution:
        return images
    scale = resolution / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def score_losses(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    resolution: int,
    loss_fn: LossFn | None = None,
) -> torch.Tensor:
    """Per-sample losses of ``images`` (already augmented) downsampled to ``resolution``; no state change.

    Normalisation uses the pool's batch statistics (BatchNorm modules in train mode) while everything
    else runs in eval mode. Why: hardness is defined by the training loss, which is computed with batch
    statistics; running statistics are calibrated to full-resolution activations, and activation
    statistics shift with input resolution (the FixRes train/test discrepancy), so eval-mode BN would
    mis-normalise the low-resolution pass, worst early in training when the running averages lag. The
    thesis scores with the model in its training mode; we keep that normalisation but drop the side
    effects: dropout/drop-path are off (deterministic scores), every parameter, buffer (BN running stats,
    ``num_batches_tracked``) and train/eval flag is restored bit-exactly, and the CPU/CUDA RNG states
    are forked. Pass the plain module (DDP-unwrapped): a DDP forward would sync buffers.
    ``loss_fn(logits, targets)`` must return per-sample losses; default cross-entropy.
    """
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices), scoring_mode(model):
        logits = model(downsample(images, resolution))
        if loss_fn is None:
            losses = F.cross_entropy(logits.float(), targets, reduction="none")
        else:
            losses = loss_fn(logits, targets)
    if losses.shape != (images.shape[0],):
        raise ValueError(f"loss_fn must return one loss per sample, got shape {tuple(losses.shape)}")
    return losses.detach().float()
