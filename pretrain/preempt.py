"""Preemption, time-based checkpoints and a data error on one rank: every rank stops (or saves) together.

``PreemptHook`` catches ``runtime.preempt_signals`` (default SIGTERM, what slurm and most schedulers send
before a kill, and SIGUSR1, what ``tools/slurm_train.sh`` asks slurm for ahead of the time limit). The
signal handler only sets a flag; the run finishes the step in progress, writes the mid-epoch checkpoint
``step_<n>.pth`` that ``runtime.max_steps`` stops write (the exact-resume state; at an epoch's end, the
epoch checkpoint), and ``tools/train.py`` exits with :data:`PREEMPTED_EXIT_CODE` (75). ``--resume``
continues bit for bit. ``runtime.checkpoint_minutes`` adds such a ``step_<n>.pth`` every that many
minutes without stopping (only the newest is kept), which bounds what a hard kill loses.

All ranks must act at the same step, and a signal reaches one process (or the ranks at different
moments); a decode failure happens on one rank. So before each batch every rank contributes to one
``all_reduce`` of three flags -- a data error here, a signal received here, rank 0's clock says a
checkpoint is due -- and all act on the result: a data error raises on every rank with the failing
rank's one-line message (then ``error: ...`` and exit 2, nothing written since the last checkpoint),
a signal stops every rank after this step. Every step, not every k: a rank whose loader failed has no
batch to train, so the others must learn it before their next collective (DDP's gradient all_reduce);
it costs one 3-element all_reduce per step (bench figures in docs/reliability.md).
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from dar_common.exit_codes import PREEMPTED_EXIT_CODE

from .data import DataError
from .env import first_error
from .hooks import Hook
from .sections import parse_signals

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["PREEMPTED_EXIT_CODE", "PREEMPTED", "PreemptHook", "parse_signals"]

PREEMPTED = "preempted"  # Trainer.stop_reason after a preemption signal
class PreemptHook(Hook):
    """Signals -> stop after the current step with a checkpoint; ``checkpoint_minutes`` -> a checkpoint.

    Installs its handlers for the run (``before_train``) and restores the previous ones after a finished
    run; after a preemption stop they stay (see ``_stopped_together``).
    """

    def __init__(self, signals: Iterable[str] = ("SIGTERM", "SIGUSR1"), checkpoint_minutes: float | None = None):
        self.signals = parse_signals(signals)
        self.checkpoint_s = 60.0 * checkpoint_minutes if checkpoint_minutes else None
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}
        self._save_due = False
        self._last_save = time.monotonic()
        self._timed: Path | None = None  # the newest time-based checkpoint written by this process
        self._pid = os.getpid()

    # -- signals ------------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:  # a loader worker (forked with this handler): the trainer decides
            return
        if self.received is None:  # later signals (a launcher stopping the ranks) change nothing
            self.received = signal.Signals(signum)
            print(f"\n{self.received.name} received: stopping after this step with a checkpoint "
                  f"(exit {PREEMPTED_EXIT_CODE}; resume with --resume)", file=sys.stderr, flush=True)

    def before_train(self, trainer: Trainer) -> None:
        self._last_save, self._pid = time.monotonic(), os.getpid()
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def on_stop(self, trainer: Trainer) -> None:
        if trainer.stop_reason == PREEMPTED:
            self._stopped_together()

    def after_epoch(self, trainer: Trainer) -> None:
        if trainer.stop_reason == PREEMPTED and trainer.progress.epochs_done < trainer.plan.epochs:
            self._stopped_together()  # stopped at an epoch's end: the epoch checkpoint is the one

    @staticmethod
    def _stopped_together() -> None:
        """After the stop checkpoint: no rank exits before rank 0 has written it. A launcher kills the
        other ranks once one exits (torchrun; srun --kill-on-bad-exit), so the handlers stay installed
        until the process ends: a SIGTERM from the launcher meanwhile changes nothing, every rank exits 75."""
        if dist.is_initialized():
            dist.barrier()

    def after_train(self, trainer: Trainer) -> None:
        self._restore()

    # -- the per-step agreement ----------------------------------------------------------------------------
    def wrap_batches(self, trainer: Trainer, batches: Iterable) -> Iterator:
        """``batches``, each handed out only once every rank agrees nothing stops the run before it."""
        it, yielded = iter(batches), False
        while True:
            p = trainer.progress
            if self._save_due and yielded and p.step_in_epoch < trainer.steps:  # agreed a step ago: save
                self._save_timed(trainer)  # between two steps; after an epoch's last one, after the next
            error, end, batch = None, False, None
            try:
                batch = next(it)
            except StopIteration:
                end = True
            except DataError as exc:
                error = str(exc)
            due = self.checkpoint_s is not None and time.monotonic() - self._last_save >= self.checkpoint_s
            any_error, preempt, save, ended = self._agree(trainer, error is not None, self.received is not None,
                                                          due and trainer.env.main, end)
            if any_error:
                raise DataError(first_error(error))
            if ended != end:
                raise RuntimeError("ranks disagree on the length of the epoch")  # a bug, not bad input
            if preempt:
                trainer.request_stop(PREEMPTED)
            if save:
                self._save_due, self._last_save = True, time.monotonic()
            if end:
                return
            yielded = True
            yield batch

    @staticmethod
    def _agree(trainer: Trainer, *flags: bool) -> list[bool]:
        """Each flag OR-ed over the ranks (one all_reduce); the local flags without a process group."""
        if not dist.is_initialized():
            return list(flags)
        t = torch.tensor([int(f) for f in flags], dtype=torch.int64, device=trainer.env.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(x) for x in t.tolist()]

    def _save_timed(self, trainer: Trainer) -> None:
        """A mid-epoch checkpoint (collective); the previous time-based one goes, epoch ones stay."""
        self._save_due = False
        name = f"step_{trainer.progress.global_step}.pth"
        trainer.save_checkpoint(name, {})
        path = trainer.work_dir / name
        if trainer.env.main and self._timed is not None and self._timed != path:
            self._timed.unlink(missing_ok=True)
        self._timed = path
