"""The process-group lifecycle: every ``torch.distributed`` group of the project is made by
:func:`init_process_group` and closed by :func:`close_distributed`, so that no gloo thread outlives the
interpreter's last Python code. Pre-training (``pretrain.env.init_distributed``) and fine-tuning (mmengine's
launcher, patched in ``transfer.mm.compat``) both go through here.
"""
from __future__ import annotations

import gc
from typing import Any

import torch.distributed as dist

__all__ = ["close_distributed", "init_process_group"]


def init_process_group(backend: str, **kwargs: Any) -> None:
    """``dist.init_process_group``, made safe to close: every group is created through this.

    ``torch.distributed.nn.functional`` declares its collectives with ``group=group.WORLD`` defaults, which
    are evaluated when the module is first imported. Imported after the group exists -- ``torch._dynamo``
    imports it, and timm, torchvision and ``torch.distributed.fsdp`` import dynamo -- those ten defaults
    hold the default group for the life of the interpreter, so :func:`close_distributed` cannot free it
    and gloo's worker threads are still running at exit (the abort described there). Importing it first
    makes the defaults ``None``.
    """
    import torch.distributed.nn.functional  # noqa: F401  (see above: before the group exists)

    dist.init_process_group(backend, **kwargs)


def close_distributed() -> None:
    """Destroy the process group now, while the interpreter is fully alive; a no-op without one.

    ``destroy_process_group`` only unregisters the group: the C++ object, and gloo's worker threads, live
    on while anything still holds it -- DDP does, and a trainer in a reference cycle is freed only by the
    collector at interpreter exit. A worker that then releases a finished collective's tensors must take
    the GIL, which a finalizing interpreter no longer hands out: the thread unwinds through a noexcept
    destructor and the rank aborts (``terminate called without an active exception``, SIGABRT) after a
    successful run, one 2-rank run in five or so here. So the caller drops its own references first and
    this collects the cycles, which frees the last holder and joins the workers (torch releases the GIL
    in that destructor). A group is also held for good by any module imported after it was created
    whose defaults captured it; :func:`init_process_group` prevents the one such case in torch.
    """
    if dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()
