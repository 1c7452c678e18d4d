"""mmcv's compiled-ops module for the lite stack, on torchvision's kernels.

mmcv-lite is mmcv 2.1.0's Python code without its compiled extension ``mmcv._ext``. Each op module of
``mmcv.ops`` fetches its kernels with ``ext_loader.load_ext('_ext', names)``, that is
``importlib.import_module('mmcv._ext')`` and a ``hasattr`` check per name. :func:`install` puts a module
built here in ``sys.modules['mmcv._ext']`` before ``mmcv.ops`` is first imported, so mmcv's own Python
wrappers (``RoIAlign``/``roi_align``, ``nms``, ``batched_nms`` with its ``split_thr`` path,
``sigmoid_focal_loss``) run unchanged on these kernels, on CPU and CUDA alike:

- ``roi_align_forward`` / ``roi_align_backward``: torchvision's ``roi_align`` (the Detectron2 kernel mmcv's
  ``aligned=True`` mode is taken from; average pooling; any ``sampling_ratio``, ``aligned`` either way);
- ``nms``: torchvision's ``nms`` in mmcv's visiting order (offset 0), or mmcv's CPU loop on tensors
  (offset 1);
- ``sigmoid_focal_loss_forward`` / ``_backward``: elementwise torch, the formulas of mmcv's CUDA kernel
  (mmdet's ``FocalLoss`` calls it on CUDA only; on CPU it uses its own PyTorch version);
- ``get_compiler_version`` / ``get_compiling_cuda_version``: what the ops were actually built with.

Every other kernel name resolves to a function raising :class:`CompiledOpRequired`, one line that names
the op and says how to get the compiled stack; imports of ``mmcv.ops`` therefore succeed and only a call
of a missing op fails. Nothing in site-packages is touched.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torchvision

FORCE_ENV = "DAR_TRANSFER_MMCV_OPS"  # "torchvision": use these ops even where compiled mmcv is installed
FULL_STACK_HINT = "python tools/setup_env.py --mmcv full (or: make env STACK=full)"
FLT_MIN = float(np.finfo(np.float32).tiny)  # mmcv's kernels clamp with the C constant FLT_MIN for every dtype


class CompiledOpRequired(RuntimeError):
    """An mmcv op the lite stack does not provide was called."""


def _unavailable(op: str) -> CompiledOpRequired:
    return CompiledOpRequired(
        f"mmcv op '{op}' needs mmcv's compiled ops, which the lite stack (mmcv-lite + torchvision kernels for "
        f"{', '.join(PROVIDED_OPS)}) does not have; set up the full stack: {FULL_STACK_HINT}")


# ---- RoIAlign --------------------------------------------------------------------------------------------

def roi_align_forward(input: torch.Tensor, rois: torch.Tensor, output: torch.Tensor, argmax_y: torch.Tensor,
                      argmax_x: torch.Tensor, aligned_height: int, aligned_width: int, spatial_scale: float,
                      sampling_ratio: int, pool_mode: int, aligned: bool) -> None:
    """mmcv's ``roi_align_forward(..., output, ...)``: fills ``output`` (R, C, aligned_height, aligned_width).
    ``pool_mode`` 1 is average pooling; max pooling (0) has no torchvision kernel."""
    if pool_mode != 1:
        raise _unavailable("roi_align with pool_mode='max'")
    pooled = torch.ops.torchvision.roi_align(input, rois.to(input.dtype), float(spatial_scale),
                                             int(aligned_height), int(aligned_width), int(sampling_ratio),
                                             bool(aligned))
    output.copy_(pooled)


@contextlib.contextmanager
def _nondeterministic_allowed(on_cuda: bool) -> Iterator[None]:
    """torchvision's CUDA RoIAlign backward accumulates with atomicAdd and says so to torch's deterministic
    mode; mmcv's compiled kernel does the same without saying so. Under ``use_deterministic_algorithms``
    the full stack trains, so the lite stack must too: lift the check for this one call."""
    if not (on_cuda and torch.are_deterministic_algorithms_enabled()):
        yield
        return
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)


def roi_align_backward(grad_output: torch.Tensor, rois: torch.Tensor, argmax_y: torch.Tensor,
                       argmax_x: torch.Tensor, grad_input: torch.Tensor, aligned_height: int,
                       aligned_width: int, spatial_scale: float, sampling_ratio: int, pool_mode: int,
                       aligned: bool) -> None:
    """mmcv's ``roi_align_backward(grad_output, ..., grad_input, ...)``: fills ``grad_input`` (N, C, H, W)."""
    if pool_mode != 1:
        raise _unavailable("roi_align with pool_mode='max'")
    batch, channels, height, width = grad_input.shape
    with _nondeterministic_allowed(grad_output.is_cuda):
        grad = torch.ops.torchvision._roi_align_backward(
            grad_output, rois.to(grad_output.dtype), float(spatial_scale), int(aligned_height),
            int(aligned_width), batch, channels, height, width, int(sampling_ratio), bool(aligned))
    grad_input.copy_(grad)


# ---- NMS -------------------------------------------------------------------------------------------------

def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, offset: int) -> torch.Tensor:
    """mmcv's ``nms``: indices of the kept boxes, by decreasing score.

    Ties: mmcv visits boxes in the order of ``scores.sort(0, descending=True)``, an unstable sort, where
    torchvision sorts stably; among equal scores the two keep different boxes. So the order is taken
    from the same torch call, and torchvision runs on the boxes in that order with strictly decreasing
    stand-in scores. mmcv compares the IoU with the threshold in float32, torchvision in double: passing
    the float32 value makes them agree on boxes whose IoU is exactly the threshold. ``offset=1`` (legacy
    width ``x2 - x1 + 1``) has no torchvision kernel; it runs mmcv's own arithmetic on tensors."""
    if boxes.numel() == 0:
        return boxes.new_empty(0, dtype=torch.long)
    threshold = float(np.float32(iou_threshold))
    order = scores.sort(0, descending=True)[1]
    if offset != 0:
        return _nms_with_offset(boxes, order, threshold, offset)
    ranks = torch.arange(len(order), 0, -1, dtype=boxes.dtype, device=boxes.device)  # exact below 2**24
    return order[torch.ops.torchvision.nms(boxes[order], ranks, threshold)]


def _nms_with_offset(boxes: torch.Tensor, order: torch.Tensor, threshold: float, offset: int) -> torch.Tensor:
    """mmcv's CPU NMS loop with the same float operations in the same order, as an IoU matrix and a greedy
    pass over it (quadratic memory: fine for the legacy configs that still use ``offset=1``)."""
    x1, y1, x2, y2 = boxes[order].unbind(1)
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    w = (torch.minimum(x2[:, None], x2[None]) - torch.maximum(x1[:, None], x1[None]) + offset).clamp(min=0)
    h = (torch.minimum(y2[:, None], y2[None]) - torch.maximum(y1[:, None], y1[None]) + offset).clamp(min=0)
    inter = w * h
    suppresses = (inter / (areas[:, None] + areas[None] - inter) > threshold).cpu().numpy()
    kept = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if kept[i]:
            kept[i + 1:] &= ~suppresses[i, i + 1:]
    return order[torch.from_numpy(kept).to(order.device)]


# ---- sigmoid focal loss ----------------------------------------------------------------------------------

def _focal_parts(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor):
    classes = input.size(1)
    if weight.numel() and bool((target >= classes).any()):
        raise ValueError("sigmoid_focal_loss: a class weight with background targets (target == num_classes) "
                         "reads past the weight in mmcv's kernel; pass weight=None")
    is_target = target[:, None] == torch.arange(classes, device=input.device)
    p = 1.0 / (1.0 + torch.exp(-input))
    per_class = weight[target][:, None] if weight.numel() else None
    return is_target, p, per_class


def sigmoid_focal_loss_forward(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                               output: torch.Tensor, gamma: float, alpha: float) -> None:
    """mmcv's CUDA kernel, elementwise: ``-alpha (1-p)^gamma log p`` for the target class,
    ``-(1-alpha) p^gamma log(1-p)`` for the others, logs clamped at FLT_MIN; fills ``output`` (N, C)."""
    is_target, p, per_class = _focal_parts(input, target, weight)
    term_p = (1.0 - p).pow(gamma) * torch.log(p.clamp(min=FLT_MIN))
    term_n = p.pow(gamma) * torch.log((1.0 - p).clamp(min=FLT_MIN))
    loss = torch.where(is_target, -alpha * term_p, -(1.0 - alpha) * term_n)
    output.copy_(loss if per_class is None else loss * per_class)


def sigmoid_focal_loss_backward(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                                grad_input: torch.Tensor, gamma: float, alpha: float) -> None:
    """d loss / d input of :func:`sigmoid_focal_loss_forward`, mmcv's closed form; fills ``grad_input``."""
    is_target, p, per_class = _focal_parts(input, target, weight)
    term_p = (1.0 - p).pow(gamma) * (1.0 - p - gamma * p * torch.log(p.clamp(min=FLT_MIN)))
    term_n = p.pow(gamma) * (gamma * (1.0 - p) * torch.log((1.0 - p).clamp(min=FLT_MIN)) - p)
    grad = torch.where(is_target, -alpha * term_p, -(1.0 - alpha) * term_n)
    grad_input.copy_(grad if per_class is None else grad * per_class)


# ---- build information -----------------------------------------------------------------------------------

def get_compiler_version() -> str:
    return f"none: mmcv-lite, ops from torchvision {torchvision.__version__}"


def get_compiling_cuda_version() -> str:
    return torch.version.cuda or "not available"


PROVIDED: dict[str, Callable] = {f.__name__: f for f in (
    roi_align_forward, roi_align_backward, nms, sigmoid_focal_loss_forward, sigmoid_focal_loss_backward,
    get_compiler_version, get_compiling_cuda_version)}
PROVIDED_OPS = ("roi_align (avg)", "nms", "batched_nms", "sigmoid_focal_loss")


def _missing_kernel(name: str) -> Callable:
    """PEP 562 ``__getattr__`` of the module: every kernel mmcv asks for exists, and fails when called."""
    if name.startswith("__"):  # import machinery, pickling and inspect probe dunders: answer honestly
        raise AttributeError(name)

    def kernel(*args, **kwargs):
        raise _unavailable(name)

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


class _ExtLoader(importlib.abc.Loader):
    """The stand-in's loader. mmengine asks ``pkgutil.find_loader('mmcv._ext')`` whether mmcv's ops are
    there (``mmcv_full_available``: SyncBN conversion, DCN learning rates); a module with a spec and a
    loader answers yes, as the compiled one does."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        ext = types.ModuleType(spec.name, "mmcv's kernels for the lite stack (transfer: torchvision ops)")
        ext.__dict__.update(PROVIDED)
        ext.__getattr__ = _missing_kernel
        ext.PROVIDED_BY = __name__
        return ext

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def build_ext_module() -> types.ModuleType:
    """A module standing in for ``mmcv._ext``: :data:`PROVIDED` plus :func:`_missing_kernel`."""
    return importlib.util.module_from_spec(
        importlib.machinery.ModuleSpec("mmcv._ext", _ExtLoader(), origin=__file__))


def active() -> bool:
    """True when ``mmcv._ext`` is this module's stand-in (asked of its ``__dict__``: the stand-in answers
    every other name with a kernel, so ``hasattr`` would say yes to anything)."""
    ext = sys.modules.get("mmcv._ext")
    return ext is not None and vars(ext).get("PROVIDED_BY") == __name__


def compiled_ops_installed() -> bool | None:
    """True when the installed mmcv has its compiled ``_ext``, False for mmcv-lite, None without mmcv;
    found from the files, without importing mmcv."""
    spec = importlib.util.find_spec("mmcv")
    if spec is None or not spec.submodule_search_locations:
        return None
    return any(any(Path(folder).glob("_ext*")) for folder in spec.submodule_search_locations)


def install() -> bool:
    """Provide ``mmcv._ext`` from this module when mmcv has no compiled ops (or ``DAR_TRANSFER_MMCV_OPS=
    torchvision``). Call before the first ``import mmcv.ops``. True when installed (now or before)."""
    if "mmcv._ext" in sys.modules:
        return active()
    forced = os.environ.get(FORCE_ENV, "").lower() == "torchvision"
    if not forced and compiled_ops_installed() is not False:
        return False
    finder = next((f for f in sys.meta_path if type(f).__name__ == "LiteExtFinder"), None)
    if finder is not None and not forced:  # ext_finder.py (the setup's .pth) provides it when asked
        return True
    if "mmcv.ops" in sys.modules:
        raise RuntimeError("mmcv.ops was imported before transfer: import transfer first so that mmcv's ops "
                           "come from torchvision on the lite stack")
    sys.modules["mmcv._ext"] = build_ext_module()
    return True
