"""Training cost accounting: FLOP counts of a timm model and the cost of a training step.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2). A
method's planned relative cost is its ``plan()`` (``pretrain.methods``); a run's achieved cost is the
trainer's count of trained samples and untrained (scoring) forwards, converted with these functions.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["TRAIN_FLOPS_PER_FORWARD", "forward_flops", "train_flops_per_sample"]

# A training step is one forward plus a backward that costs about two forwards: for every weight
# layer the backward computes the gradient w.r.t. its input and w.r.t. its weight, each a matmul/conv
# as large as the forward one (Kaplan et al. 2020; the thesis measures forward ~ 1/3 of a step).
TRAIN_FLOPS_PER_FORWARD = 3.0
def forward_flops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """FLOPs of one eval-mode forward of a batch of ``input_shape`` (e.g. ``(1, 3, 224, 224)``).

    Runs on a deep copy moved to the ``meta`` device (no memory, no compute, ``model`` untouched); a
    model with an op that has no meta kernel is counted on a CPU copy instead.
    """
    for device in ("meta", "cpu"):
        clone = copy.deepcopy(model).eval().to(device)
        counter = FlopCounterMode(display=False)
        try:
            with torch.no_grad(), counter:
                clone(torch.zeros(tuple(input_shape), device=device))
        except (NotImplementedError, RuntimeError):
            if device == "cpu":
                raise
            continue
        return float(counter.get_total_flops())
    raise AssertionError("unreachable")


def train_flops_per_sample(model: nn.Module, input_size: Sequence[int]) -> float:
    """Training FLOPs per sample of size ``input_size`` (C, H, W): 3 x one forward (see above)."""
    return TRAIN_FLOPS_PER_FORWARD * forward_flops(model, (1, *input_size))
