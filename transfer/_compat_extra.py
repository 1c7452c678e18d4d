"""Stack fixes found while building the transfer tools (to be merged into :mod:`transfer.compat` by its
owner). Each is a small idempotent function returning whether it applied; nothing in site-packages is
edited.
"""
from __future__ import annotations

import functools

import torch

APPLIED: list[str] = []


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
        backend = "gloo" if backend == "nccl" else backend  # NCCL needs GPUs
        torch.distributed.init_process_group(backend=backend, **kwargs)

    init_dist_pytorch._dar_transfer_fixed = True
    utils._init_dist_pytorch = init_dist_pytorch
    return True


def cpu_ddp_wrapper_cfg(cfg) -> dict:
    """``model_wrapper_cfg`` for distributed runs on CPU: mmengine's Runner passes
    ``device_ids=[LOCAL_RANK]`` to DistributedDataParallel, which torch rejects for a CPU module; an explicit
    ``device_ids=None`` in the wrapper config takes precedence over that default."""
    return dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                find_unused_parameters=cfg.get("find_unused_parameters", False))


FIXES = {"mmengine-cpu-pytorch-launcher": fix_mmengine_cpu_pytorch_launcher}


def apply_all() -> list[str]:
    for name, fix in FIXES.items():
        if name not in APPLIED and fix():
            APPLIED.append(name)
    return list(APPLIED)


apply_all()
