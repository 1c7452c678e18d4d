"""The trainer's hooks: every event a no-op by default; a hook overrides the one or two it needs.

Events, in the order the trainer calls them (each with the trainer as its argument)::

    before_train
      before_epoch
        before_step -> run_step -> after_step          (per step; request_stop() ends the run after it:
                                                        a mid-epoch checkpoint, then on_stop)
      after_epoch_train   the epoch is trained and the method's end-of-epoch rule applied;
                          trainer.record (the log line) is open: evaluation and dumps fill it
      after_epoch         progress updated: log line, checkpoint
    after_train           backbone.pth written

A hook with state returns it from ``state_dict`` (the checkpoint keeps it under its class name).

This module imports nothing of the package (the trainer only for type hints): the feature hooks
(``pretrain.preempt``, ``pretrain.bn_recalibrate``, ``pretrain.probes.hook``) import :class:`Hook` from here,
and the entry layer composes a run's hooks (``pretrain.cli.default_hooks``) and hands them to the ``Trainer``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from dar_common.workdir import LOG_FILE, append_jsonl, atomic_path, atomic_write_text

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["CheckpointHook", "EvalHook", "Hook", "LogHook", "MaxStepsHook", "ProgressBarHook",
           "SelectionDumpHook"]


class Hook:
    def before_train(self, trainer: Trainer) -> None: ...
    def before_epoch(self, trainer: Trainer) -> None: ...
    def before_step(self, trainer: Trainer) -> None: ...
    def after_step(self, trainer: Trainer) -> None: ...
    def on_stop(self, trainer: Trainer) -> None: ...
    def after_epoch_train(self, trainer: Trainer) -> None: ...
    def after_epoch(self, trainer: Trainer) -> None: ...
    def after_train(self, trainer: Trainer) -> None: ...

    def wrap_batches(self, trainer: Trainer, batches):
        """The epoch's batch iterator, passed through each hook in turn (e.g. to agree across ranks)."""
        return batches

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class MaxStepsHook(Hook):
    """``runtime.max_steps``: stop after that many updates (a resumable ``step_<n>.pth`` mid-epoch)."""

    def __init__(self, max_steps: int | None):
        self.max_steps = max_steps

    def after_step(self, trainer: Trainer) -> None:
        if self.max_steps and trainer.progress.global_step >= self.max_steps:
            trainer.request_stop("max_steps")


class ProgressBarHook(Hook):
    """A tqdm bar per epoch on rank 0: loss so far, planned kept fraction, samples/s."""

    def before_epoch(self, trainer: Trainer) -> None:
        p = trainer.progress
        self.kept = trainer.plan.sizes[p.epoch - 1] / trainer.plan.num_samples
        self.bar = tqdm(total=trainer.steps, initial=p.step_in_epoch, disable=not trainer.env.main, leave=False,
                        desc=f"epoch {p.epoch}/{trainer.plan.epochs}", dynamic_ncols=True,
                        mininterval=0.5 if sys.stderr.isatty() else 30)  # log files get a line per 30 s
        self.t0, self.seen = time.time(), trainer.meter.count

    def after_step(self, trainer: Trainer) -> None:
        m, elapsed = trainer.meter, max(time.time() - self.t0, 1e-9)
        self.bar.update()
        self.bar.set_postfix(loss=f"{m.loss_sum / max(m.count, 1):.3f}", kept=f"{self.kept:.2f}",
                             samples_s=f"{(m.count - self.seen) * trainer.env.world / elapsed:.0f}", refresh=False)

    def on_stop(self, trainer: Trainer) -> None:
        self.bar.close()

    def after_epoch_train(self, trainer: Trainer) -> None:
        self.bar.close()


class SelectionDumpHook(Hook):
    """Rank 0 writes the method's end-of-epoch arrays to ``selection/epoch_XXX.npz`` (atomically)."""

    def after_epoch_train(self, trainer: Trainer) -> None:
        dump = trainer.epoch_result.dump
        if not trainer.env.main or not dump:
            return
        folder = trainer.work_dir / "selection"
        folder.mkdir(exist_ok=True)
        with atomic_path(folder / f"epoch_{trainer.progress.epoch:03d}.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **dump)


class EvalHook(Hook):
    """Validation top-1 / top-5 every ``runtime.eval_interval`` epochs and after the last."""

    def after_epoch_train(self, trainer: Trainer) -> None:
        epoch = trainer.progress.epoch
        if epoch % trainer.cfg.runtime.eval_interval == 0 or epoch == trainer.plan.epochs:
            trainer.record.top1, trainer.record.top5 = trainer.evaluate()


class LogHook(Hook):
    """``log.jsonl``: one line per epoch, a summary line at the end; a resume drops the lines it retrains."""

    def before_train(self, trainer: Trainer) -> None:
        if trainer.env.main:
            trim_log(trainer.work_dir / LOG_FILE, trainer.progress.epochs_done)

    def after_epoch(self, trainer: Trainer) -> None:
        if trainer.env.main:
            append_jsonl(trainer.work_dir / LOG_FILE, trainer.record.line())

    def after_train(self, trainer: Trainer) -> None:
        if trainer.env.main:
            append_jsonl(trainer.work_dir / LOG_FILE, {"type": "summary", **trainer.summary()})


def trim_log(path: Path, epochs_done: int) -> None:
    """Keep the epoch lines of epochs the checkpoint has seen (later ones will be trained again)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("type") in ("epoch", "probe") and json.loads(ln)["epoch"] <= epochs_done]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


class CheckpointHook(Hook):
    """``epoch_<n>.pth`` every ``runtime.checkpoint_interval`` epochs, after the last, and when stopping."""

    def after_epoch(self, trainer: Trainer) -> None:
        epoch = trainer.progress.epochs_done
        if (epoch % trainer.cfg.runtime.checkpoint_interval == 0 or epoch == trainer.plan.epochs
                or trainer.stop_reason):
            trainer.save_checkpoint(f"epoch_{epoch}.pth", trainer.summary())
