"""Test-only entry point: ``python faults.py tools/train.py ARGS`` runs the training script with marks
and holds at the moments a kill test aims at. Nothing in the project imports this file.

It wraps four seams of the real code (no product code is changed, nothing is mocked):

* ``step <global_step>``      -- after each optimizer update (``Trainer.run_step``);
* ``selection <epoch>``       -- on entering the method's end-of-epoch rule (``method.end_epoch``);
* ``checkpoint <file name>``  -- inside the write of a ``.pth`` file (``Path.write_bytes``, which the
  project's atomic ``torch.save`` uses, or ``torch.save`` to a path): the bytes are written in two parts
  (the checkpoint's temporary file, ``backbone.pth``'s, ...);
* ``pointer <file name>``     -- before ``last_checkpoint`` is pointed at a new checkpoint.

Environment (set by ``harness.py``):

* ``DAR_FAULTS_LOG``: a file every rank appends ``<rank> <pid> <point> <key>`` lines to, flushed, when
  it reaches a seam, so the harness knows where each process is;
* ``DAR_FAULTS_HOLD``: ``point:key[:fraction]`` -- at that one moment, sleep ``DAR_FAULTS_HOLD_S``
  seconds (default 10) so that the harness's signal lands inside it; for ``checkpoint`` the first
  ``fraction`` of the bytes are written and flushed before the hold (a half-written temporary file).
"""
from __future__ import annotations

import io
import os
import runpy
import sys
import time
from pathlib import Path

LOG = os.environ.get("DAR_FAULTS_LOG")
HOLD = os.environ.get("DAR_FAULTS_HOLD", "")
HOLD_S = float(os.environ.get("DAR_FAULTS_HOLD_S", "10"))
RANK = os.environ.get("RANK", "0")


def mark(point: str, key: object) -> bool:
    """Record reaching ``point key``; True when this is the moment to hold at."""
    if LOG:
        with open(LOG, "a") as f:
            f.write(f"{RANK} {os.getpid()} {point} {key}\n")
    target = HOLD.split(":")
    return len(target) >= 2 and target[0] == point and target[1] == str(key)


def hold() -> None:
    if LOG:
        with open(LOG, "a") as f:
            f.write(f"{RANK} {os.getpid()} holding {HOLD}\n")
    time.sleep(HOLD_S)


def install() -> None:
    import torch

    import pretrain.checkpoint as ckpt
    from pretrain.trainer import Trainer

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return real_save(obj, f, *args, **kwargs)
        name = Path(f).name
        final = name[1:].rsplit(".tmp", 1)[0] if name.startswith(".") and ".tmp" in name else name
        if not mark("checkpoint", final):
            return real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        parts = HOLD.split(":")
        cut = int(len(data) * (float(parts[2]) if len(parts) > 2 else 0.5))
        with open(f, "wb") as out:
            out.write(data[:cut])
            out.flush()
            os.fsync(out.fileno())
            hold()
            out.write(data[cut:])
        return None

    torch.save = save

    real_write_bytes = Path.write_bytes

    def write_bytes(self, data):  # dar_common.workdir.atomic_save serialises first, then writes the bytes
        name = self.name
        final = name[1:].rsplit(".tmp", 1)[0] if name.startswith(".") and ".tmp" in name else name
        if not final.endswith(".pth") or not mark("checkpoint", final):
            return real_write_bytes(self, data)
        parts = HOLD.split(":")
        data = bytes(data)
        cut = int(len(data) * (float(parts[2]) if len(parts) > 2 else 0.5))
        with open(self, "wb") as out:
            out.write(data[:cut])
            out.flush()
            os.fsync(out.fileno())
            hold()
            out.write(data[cut:])
        return len(data)

    Path.write_bytes = write_bytes

    real_pointer = ckpt.write_last_checkpoint

    def write_last_checkpoint(work_dir, checkpoint):
        if mark("pointer", Path(checkpoint).name):
            hold()
        return real_pointer(work_dir, checkpoint)

    ckpt.write_last_checkpoint = write_last_checkpoint

    real_step, real_close = Trainer.run_step, Trainer.close_epoch

    def run_step(self, batch):
        losses = real_step(self, batch)
        mark("step", self.progress.global_step)
        return losses

    def close_epoch(self):
        method = self.method
        if not getattr(method, "_faults_wrapped", False):
            real_end = method.end_epoch

            def end_epoch(epoch):
                if mark("selection", epoch):
                    hold()
                return real_end(epoch)

            method.end_epoch = end_epoch
            method._faults_wrapped = True
        return real_close(self)

    Trainer.run_step, Trainer.close_epoch = run_step, close_epoch


if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    install()
    runpy.run_path(script, run_name="__main__")
