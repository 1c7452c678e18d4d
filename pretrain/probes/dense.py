"""Dense probe: a linear per-pixel classifier on frozen multi-scale features, mIoU on held-out images.

The frozen backbone's stage outputs of stride >= 4 (timm's ``forward_intermediates``; the stride-2 stem
is left out, as FPN / UPerNet do) are computed once per image and kept. The head is one 1x1 convolution
over the channel-wise standardised, bilinearly upsampled and concatenated features. Upsampling and
standardising are per-channel linear maps whose weights sum to one, so they commute with the 1x1 conv:
the head applies one 1x1 conv per scale at its own resolution and sums the upsampled logits -- the same
function, without materialising the concatenated full-resolution features. It trains for a fixed number
of Adam steps on random batches drawn from an explicit generator (fixed seed): same features, same head.
Training compares logits and labels at the stride-4 resolution; evaluation at the full label resolution.
mIoU is mmseg's: per-class IoU over the whole val set, classes with an empty union (never in the labels,
never predicted) left out, 255 ignored.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..sections import DenseSettings
from .dense_data import IGNORE


def feature_indices(model: nn.Module) -> list[int]:
    """Indices (for ``forward_intermediates``) of the stages with stride >= 4."""
    info = getattr(model, "feature_info", None)
    if not info or not hasattr(model, "forward_intermediates"):
        raise ValueError(f"{type(model).__name__} has no timm forward_intermediates / feature_info")
    return [i for i, f in enumerate(info) if f["reduction"] >= 4]


@torch.no_grad()
def multiscale_features(model: nn.Module, images: torch.Tensor, batch_size: int = 16) -> list[torch.Tensor]:
    """Frozen stage outputs (N, C_i, h_i, w_i) of ``images`` (N, 3, h, w), on the model's device."""
    device = next(model.parameters()).device
    indices = feature_indices(model)
    chunks = [model.forward_intermediates(x.to(device), indices=indices, intermediates_only=True)
              for x in images.split(batch_size)]
    return [torch.cat([c[i].float() for c in chunks]) for i in range(len(indices))]


class LinearDenseHead(nn.Module):
    """1x1 conv over standardised, upsampled, concatenated features (computed per scale, see above)."""

    def __init__(self, features: list[torch.Tensor], num_classes: int):
        super().__init__()
        for i, f in enumerate(features):  # fixed standardisation from the training features
            self.register_buffer(f"mean{i}", f.mean((0, 2, 3)).view(1, -1, 1, 1))
            self.register_buffer(f"std{i}", f.std((0, 2, 3)).clamp_min(1e-6).view(1, -1, 1, 1))
        self.convs = nn.ModuleList(nn.Conv2d(f.shape[1], num_classes, 1, bias=i == 0) for i, f in enumerate(features))

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        out = 0
        for i, (f, conv) in enumerate(zip(features, self.convs, strict=True)):
            z = conv((f - getattr(self, f"mean{i}")) / getattr(self, f"std{i}"))
            out = out + F.interpolate(z, size=size, mode="bilinear", align_corners=False)
        return out


def train_head(features: list[torch.Tensor], labels: torch.Tensor, num_classes: int,
               settings: DenseSettings) -> LinearDenseHead:
    """Fit the head by ``settings.steps`` Adam steps of per-pixel cross-entropy (255 ignored)."""
    gen = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):  # the head's initialisation must not touch the training RNG
        torch.manual_seed(settings.seed)
        head = LinearDenseHead(features, num_classes).to(labels.device)
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.lr)
    # Trained at the finest feature resolution (stride 4, labels by nearest neighbour): 16x fewer
    # pixels per step than the image; evaluation upsamples to the full label resolution.
    size = tuple(features[0].shape[2:])
    labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
    n = len(labels)
    for _ in range(settings.steps):
        pick = torch.randint(n, (min(settings.batch_size, n),), generator=gen).to(labels.device)
        logits = head([f[pick] for f in features], size)
        loss = F.cross_entropy(logits, labels[pick], ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return head


def confusion(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts, rows = label, columns = prediction; IGNORE pixels left out."""
    keep = label != IGNORE
    idx = label[keep] * num_classes + pred[keep]
    return torch.bincount(idx, minlength=num_classes ** 2).view(num_classes, num_classes)


def miou(conf: torch.Tensor) -> tuple[float, torch.Tensor]:
    """mean IoU (%) over classes whose union is not empty, and the per-class IoU (NaN where empty)."""
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(inter, float("nan")))
    return 100.0 * iou.nanmean().item(), iou


@torch.no_grad()
def evaluate_head(head: LinearDenseHead, features: list[torch.Tensor], labels: torch.Tensor,
                  num_classes: int, batch_size: int = 8) -> tuple[float, torch.Tensor]:
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long, device=labels.device)
    size = tuple(labels.shape[1:])
    for start in range(0, len(labels), batch_size):
        part = slice(start, start + batch_size)
        pred = head([f[part] for f in features], size).argmax(1)
        conf += confusion(pred, labels[part], num_classes)
    return miou(conf)
