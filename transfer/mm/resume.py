"""Exact resume and preemption for mmengine fine-tuning: two hooks that ``tools/train.py`` registers.

:class:`RNGStateHook` -- mmengine's checkpoints restore weights, optimizer, schedulers and the iteration, not
the random number generators, so a resumed run drew other dropout masks and other RPN/RoI samples than the
uninterrupted one. The hook stores every rank's Python, NumPy, torch CPU and CUDA generator states in the
checkpoint (``checkpoint['rng_states']``) and puts this rank's back at the moment the uninterrupted run was
at: right before the first batch after the checkpoint is fetched. That is after mmengine's iteration loop
has replayed the batches it skips ("Advance dataloader N steps"): the replay runs the data pipeline, which
draws from the same generators (in the main process with ``num_workers=0``), so restoring earlier would be
undone. The loader needs nothing else: its sampler (mmengine's ``InfiniteSampler``/``DefaultSampler``)
draws from its own generator seeded by ``randomness.seed``, the replay puts it at the checkpoint's batch,
and workers are reseeded by mmengine's ``worker_init_fn`` from the seed, rank and worker id, their streams
replayed with the batches. Validation runs with the training generators set aside (restored after it): a
checkpoint is written before the validation of the same iteration, and the validation loader draws its
base seed from torch's generator.

:class:`PreemptionHook` -- SIGTERM/SIGUSR1 (what slurm sends before a kill and ahead of the time limit)
only set a flag; after each iteration every rank contributes it to one all_reduce, and when any rank got
a signal all of them write the iteration's checkpoint (the run's ``CheckpointHook``, so ``last_checkpoint``
and ``max_keep_ckpts`` behave as usual; the RNG states with it), wait for rank 0 to finish writing, and
raise :class:`Preempted`; ``tools/train.py`` then exits :data:`PREEMPTED_EXIT_CODE` (75) and
``--resume`` continues bit for bit.

:class:`ResumableEpochBasedTrainLoop` -- mmengine's ``EpochBasedTrainLoop`` restarts the epoch a checkpoint
was written in, so an epoch-based recipe (mmdet's 1x, mmpose's 210e) preempted mid-epoch would train the
epoch's first batches twice and step its schedulers past the end. ``tools/train.py`` runs epoch-based
configs with this subclass instead: after a checkpoint written inside epoch ``e`` (``meta``: epoch ``e``,
iteration ``n``) it replays the epoch's first ``n - e * len(loader)`` batches' data pipeline, as the
iteration loop does, and trains on from there; at an epoch boundary it is mmengine's loop unchanged. So a
preemption writes ``iter_<n>.pth`` in either kind of loop.
"""
from __future__ import annotations

import os
import random
import signal
import sys
from typing import Any

import numpy as np
import torch
from mmengine.dist import (
    all_gather_object,
    barrier,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
)
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS, LOOPS
from mmengine.runner import EpochBasedTrainLoop

from dar_common.exit_codes import PREEMPTED_EXIT_CODE
from dar_common.workdir import write_last_checkpoint

RNG_KEY = "rng_states"


def capture_rng() -> dict[str, Any]:
    """This process's generator states, as plain lists and tensors (safe for weights-only loading)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"python": [version, list(internal), gauss_next], "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _checkpoint_hook(runner) -> CheckpointHook | None:
    return next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)


class _RestoreBefore:
    """The loop's data iterator, restoring the RNG states right before its ``skip + 1``-th batch."""

    def __init__(self, loop, skip: int, state: dict[str, Any]):
        self.loop, self.inner, self.skip, self.state = loop, loop.dataloader_iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0:
            restore_rng(self.state)
            self.loop.dataloader_iterator = self.inner  # done: the loop reads its own iterator again
            return next(self.inner)
        self.skip -= 1
        return next(self.inner)


@HOOKS.register_module(force=True)
class RNGStateHook(Hook):
    """Every rank's generator states in each checkpoint; restored where the uninterrupted run was."""

    priority = "NORMAL"  # before CheckpointHook (VERY_LOW) in after_train_iter / after_train_epoch

    def __init__(self) -> None:
        self._gathered: list[dict[str, Any]] | None = None
        self._pending: dict[str, Any] | None = None
        self._val_state: dict[str, Any] | None = None

    # -- saving ---------------------------------------------------------------------------------------------
    def gather(self) -> None:
        """Collect every rank's states now (collective); the next checkpoint stores them."""
        self._gathered = all_gather_object(capture_rng()) if is_distributed() else [capture_rng()]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        hook = _checkpoint_hook(runner)
        if hook is not None and not hook.by_epoch and (
                hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                or (hook.save_last and hook.is_last_train_iter(runner))):
            self.gather()

    def after_train_epoch(self, runner) -> None:
        hook = _checkpoint_hook(runner)
        if hook is not None and hook.by_epoch and (
                hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                or (hook.save_last and hook.is_last_train_epoch(runner))):
            self.gather()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:  # rank 0 only (master_only save)
        states, self._gathered = self._gathered, None
        if states is None and get_world_size() == 1:
            states = [capture_rng()]
        if states is not None:
            checkpoint[RNG_KEY] = {"world_size": len(states), "ranks": states}

    # -- validation leaves training's generators as they were -----------------------------------------------
    def before_val(self, runner) -> None:
        self._val_state = capture_rng()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            restore_rng(self._val_state)
            self._val_state = None

    # -- resuming -------------------------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get(RNG_KEY)
        if saved is None:
            runner.logger.warning("the checkpoint holds no RNG states (written without RNGStateHook): the "
                                  "resumed run draws other random numbers than an uninterrupted one")
            return
        if saved["world_size"] != get_world_size():
            runner.logger.warning(f"the checkpoint holds the RNG states of {saved['world_size']} ranks, this run "
                                  f"has {get_world_size()}: they are not restored")
            return
        self._pending = saved["ranks"][get_rank()]

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        loop = runner.train_loop
        if hasattr(loop, "dataloader_iterator"):  # iteration-based: after the replay of the skipped batches
            loop.dataloader_iterator = _RestoreBefore(loop, loop.iter, state)
        elif isinstance(loop, ResumableEpochBasedTrainLoop) and loop.done_in_epoch > 0:  # inside an epoch
            loop.on_replayed = lambda: restore_rng(state)
        else:  # epoch-based: resumed at an epoch's start, before its loader iterator exists
            restore_rng(state)


class Preempted(Exception):
    """Every rank stopped after a preemption signal, the checkpoint written; exit 75 and resume."""


@HOOKS.register_module(force=True)
class PreemptionHook(Hook):
    """SIGTERM/SIGUSR1 -> all ranks write this iteration's checkpoint and raise :class:`Preempted`."""

    priority = "LOWEST"  # after CheckpointHook: a checkpoint it has just written is not written twice

    def __init__(self, signals: tuple[str, ...] = ("SIGTERM", "SIGUSR1")) -> None:
        self.signals = tuple(signal.Signals[s] for s in signals)
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._pid = os.getpid()

    def _on_signal(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:  # a forked data-loader worker: the trainer decides
            return
        if self.received is None:
            self.received = signal.Signals(signum)
            print(f"\n{self.received.name} received: stopping after this iteration with a checkpoint "
                  f"(exit {PREEMPTED_EXIT_CODE}; resume with --resume)", file=sys.stderr, flush=True)

    def before_train(self, runner) -> None:
        self._pid = os.getpid()
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def after_train(self, runner) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @staticmethod
    def _gather_rng(runner) -> None:
        rng = next((h for h in runner.hooks if isinstance(h, RNGStateHook)), None)
        if rng is not None:
            rng.gather()

    def _agreed(self) -> bool:
        """Whether any rank received a signal (one all_reduce per iteration when distributed)."""
        flag = self.received is not None
        if not is_distributed():
            return flag
        import torch.distributed as dist

        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._agreed():
            return
        hook = _checkpoint_hook(runner)
        name = f"iter_{runner.iter + 1}.pth"
        if hook is not None and not hook.by_epoch:
            if not str(hook.last_ckpt or "").endswith(name):  # CheckpointHook did not save this iteration
                self._gather_rng(runner)
                runner.logger.info(f"preempted: saving checkpoint at {runner.iter + 1} iterations")
                hook._save_checkpoint(runner)
            where = f"{name} written"
        elif hook is not None and isinstance(runner.train_loop, ResumableEpochBasedTrainLoop):
            self._gather_rng(runner)
            runner.logger.info(f"preempted: saving checkpoint at {runner.iter + 1} iterations "
                               f"(epoch {runner.epoch + 1}, {batch_idx + 1} of its batches)")
            _save_mid_epoch(runner, hook, name)
            where = f"{name} written"
        else:
            where = "no checkpoint written (no CheckpointHook, or mmengine's own epoch loop, which cannot resume " \
                    "inside an epoch): resume starts at the last checkpoint"
        barrier()  # no rank exits (and makes a launcher kill the others) before rank 0 has written it
        raise Preempted(f"preempted at iteration {runner.iter + 1}: {where}")


def _save_mid_epoch(runner, hook: CheckpointHook, name: str) -> None:
    """``iter_<n>.pth`` inside an epoch (meta: this epoch, the next iteration), then ``last_checkpoint``:
    what the epoch CheckpointHook would write, under the iteration's name so no epoch file is replaced."""
    runner.save_checkpoint(hook.out_dir, name, hook.file_client_args, save_optimizer=hook.save_optimizer,
                           save_param_scheduler=hook.save_param_scheduler,
                           meta=dict(epoch=runner.epoch, iter=runner.iter + 1), by_epoch=False,
                           backend_args=hook.backend_args, **hook.args)
    hook.last_ckpt = hook.file_backend.join_path(hook.out_dir, name)
    runner.message_hub.update_info("last_ckpt", hook.last_ckpt)
    if is_main_process():
        write_last_checkpoint(runner.work_dir, hook.last_ckpt)


@LOOPS.register_module(force=True)
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's epoch loop, plus resuming inside an epoch (replaying the epoch's batches already trained)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_replayed = None  # RNGStateHook: put the checkpoint's generators back after the replay

    @property
    def done_in_epoch(self) -> int:
        """Batches of the current epoch trained before the checkpoint resumed from (0 at an epoch's start)."""
        return self._iter - self._epoch * len(self.dataloader)

    def run_epoch(self) -> None:
        """As mmengine's, but the epoch's first ``done_in_epoch`` batches are only loaded, not trained on."""
        self.runner.call_hook("before_train_epoch")
        self.runner.model.train()
        done = self.done_in_epoch
        if not 0 <= done <= len(self.dataloader):
            raise RuntimeError(f"iteration {self._iter} is not in epoch {self._epoch + 1} of "
                               f"{len(self.dataloader)} batches: the checkpoint is from another data set or batch size")
        batches = iter(self.dataloader)
        if done:
            print_log(f"Advance dataloader {done} steps to skip data already trained in epoch {self._epoch + 1}",
                      logger="current")
            for _ in range(done):
                next(batches)
        if self.on_replayed is not None:
            self.on_replayed()
            self.on_replayed = None
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook("after_train_epoch")
        self._epoch += 1


def resumable_epoch_loop(train_cfg: dict) -> bool:
    """Run an epoch-based ``train_cfg`` (mmengine's loop by ``type`` or ``by_epoch=True``) with
    :class:`ResumableEpochBasedTrainLoop`, in place; whether it was one."""
    if train_cfg.get("type", "EpochBasedTrainLoop" if train_cfg.get("by_epoch") else None) != "EpochBasedTrainLoop":
        return False
    train_cfg.pop("by_epoch", None)
    train_cfg["type"] = "ResumableEpochBasedTrainLoop"
    return True
