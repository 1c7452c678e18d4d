"""Compatibility fixes for the OpenMMLab stack (mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0, mmseg 1.2.2,
mmpose 1.3.2) on current PyTorch and NumPy 2. Applied once when :mod:`transfer` is imported; nothing in
site-packages is edited.

Each fix is a small function named after what it repairs, idempotent, and listed in :data:`FIXES` so
``python -m transfer.mm.doctor`` can report which ones were applied.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np
import torch

from .mmcv_lite_ops import install as provide_mmcv_ops_from_torchvision  # the lite stack's mmcv._ext

APPLIED: list[str] = []

# mmengine and mmpose import pkg_resources, which setuptools < 81 (pinned for exactly that) deprecates
# loudly on every start; the warning says nothing a user can act on, and would precede every error line.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


def mmengine_checkpoint_globals() -> list:
    """The non-tensor types found in mmengine's own checkpoints (``message_hub`` keeps ``HistoryBuffer``s
    of NumPy arrays, whose statistics methods are pickled as ``getattr(HistoryBuffer, 'mean')``)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    try:  # NumPy 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    return [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar, getattr, *dtype_classes]


def fix_mmengine_torch_load() -> bool:
    """mmengine calls ``torch.load`` without ``weights_only``; since torch 2.6 that means weights-only
    unpickling, which rejects mmengine's own checkpoints (resume and test break). We keep safe loading
    and extend its allowlist by the few types above, only while mmengine's local checkpoint loader runs,
    instead of turning safe loading off for the whole process."""
    if tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) < (2, 6):
        return False
    from mmengine.runner.checkpoint import CheckpointLoader

    local_loader: Callable = CheckpointLoader._schemes[""]
    if getattr(local_loader, "_dar_transfer_fixed", False):
        return True

    @functools.wraps(local_loader)
    def load_from_local(filename, map_location):
        with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
            return local_loader(filename, map_location)

    load_from_local._dar_transfer_fixed = True
    CheckpointLoader._schemes[""] = load_from_local
    return True


def fix_xtcocotools_numpy2() -> bool:
    """xtcocotools' compiled ``_mask`` refers to ``np.NPY_OWNDATA`` at Python level, which NumPy 2
    removed: ``iou``/``decode``/``area``/``toBbox`` raise, so bbox/segm evaluation with its COCOeval
    fails (keypoint OKS does not use them). pycocotools' ``mask`` has the same API and RLE format, and
    works on NumPy 2: route the broken functions there."""
    try:
        from xtcocotools import mask as xt_mask
    except ImportError:
        return False
    try:
        xt_mask.area(xt_mask.encode(np.ones((1, 1, 1), dtype=np.uint8, order="F")))
        return False  # this build works as it is
    except AttributeError:
        pass
    from pycocotools import mask as coco_mask

    for name in ("iou", "merge", "decode", "area", "toBbox", "encode", "frPyObjects"):
        setattr(xt_mask, name, getattr(coco_mask, name))
    return True


def fix_mmengine_cpu_pytorch_launcher() -> bool:
    """mmengine 0.10.7's ``pytorch`` launcher calls ``torch.cuda.set_device(local_rank)`` before creating
    the process group, so ``--launcher pytorch`` on a machine without CUDA dies with "Found no NVIDIA
    driver on your system" even with the gloo backend. Without CUDA (and no other accelerator mmengine
    knows), create the gloo process group directly."""
    if torch.cuda.is_available():
        return False
    from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
    from mmengine.dist import utils

    if is_npu_available() or is_mlu_available() or is_musa_available():
        return False
    original = utils._init_dist_pytorch
    if getattr(original, "_dar_transfer_fixed", False):
        return True

    @functools.wraps(original)
    def init_dist_pytorch(backend="nccl", init_backend="torch", **kwargs):
        if init_backend != "torch":
            return original(backend, init_backend=init_backend, **kwargs)
        from dar_common.process_group import init_process_group  # a group that close_distributed can free

        backend = "gloo" if backend == "nccl" else backend  # NCCL needs GPUs
        init_process_group(backend, **kwargs)

    init_dist_pytorch._dar_transfer_fixed = True
    utils._init_dist_pytorch = init_dist_pytorch
    return True


def fix_mmengine_metafile_rereads() -> bool:
    """mmengine resolves each ``mmdet::path.py`` base of a config by first parsing every metafile the
    toolbox lists in ``.mim/model-index.yml`` (mmdet: ~100 YAML files, ~0.5 s), and only then, finding no
    model of that name, takes the path as a base config: again for every such base in every
    ``Config.fromfile``. The pipeline's checks read the five tiny recipes' configs with 28 of these scans
    (15 of its 24 s before the first stage). The files do not change while a process runs: each is parsed
    once. Only the metafile reads of ``mmengine.config.utils`` go through the cache; what they find, and the
    errors, are mmengine's own."""
    from mmengine.config import utils

    original: Callable = utils.load
    if getattr(original, "_dar_transfer_fixed", False):
        return True
    parse_once = functools.lru_cache(maxsize=None)(original)

    @functools.wraps(original)
    def load(file, *args, **kwargs):
        if args or kwargs or not isinstance(file, str):
            return original(file, *args, **kwargs)
        return parse_once(file)

    load._dar_transfer_fixed = True
    utils.load = load
    return True


def fix_mmengine_config_reformats() -> bool:
    """mmengine formats a config's text (``Config.pretty_text``) with yapf every time it is asked for it: five
    times a fine-tuning run (the log, ``config.py``, the visualizer's copy, the message hub, the first
    checkpoint's meta) and once per later checkpoint, ~0.25 s each on a CPU core, always of the same text.
    yapf's ``FormatCode`` is a function of its text and style alone: each (text, style) is formatted once
    per process and the result reused, so what mmengine writes is what it wrote before."""
    from mmengine.config import config

    original: Callable = config.FormatCode
    if getattr(original, "_dar_transfer_fixed", False):
        return True

    @functools.lru_cache(maxsize=16)
    def format_once(text: str, style: tuple) -> tuple:
        return original(text, style_config=dict(style))

    @functools.wraps(original)
    def format_code(text, *args, style_config=None, **kwargs):
        if args or kwargs or not isinstance(style_config, dict):
            return original(text, *args, style_config=style_config, **kwargs)
        return format_once(text, tuple(sorted(style_config.items())))

    format_code._dar_transfer_fixed = True
    config.FormatCode = format_code
    return True


FIXES: dict[str, Callable[[], bool]] = {
    "mmcv-ops-from-torchvision": provide_mmcv_ops_from_torchvision,  # first: before anything imports mmcv.ops
    "mmengine-torch-load-weights-only": fix_mmengine_torch_load,
    "xtcocotools-mask-numpy2": fix_xtcocotools_numpy2,
    "mmengine-cpu-pytorch-launcher": fix_mmengine_cpu_pytorch_launcher,
    "mmengine-metafile-rereads": fix_mmengine_metafile_rereads,
    "mmengine-config-reformats": fix_mmengine_config_reformats,
}


def apply_all() -> list[str]:
    """Apply every fix that is relevant here; return the names of those applied."""
    for name, fix in FIXES.items():
        if name not in APPLIED and fix():
            APPLIED.append(name)
    return list(APPLIED)


apply_all()
