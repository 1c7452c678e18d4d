"""The pre-training loop as a small Trainer: timm model + SGD + progress-driven LR, fed by a selection method.

``Trainer.train`` is before_train, epochs of before_epoch / (before_step, run_step, after_step)... /
after_epoch, after_train; logging, the progress bar, checkpoints, selection dumps and evaluation are
hooks (``pretrain.hooks``). What is trained comes from the method (``pretrain.methods``), called only
through its protocol: its feed gives the batches, ``select`` may keep part of a batch and weight the
losses, ``record`` gets the per-sample losses and logits, ``end_epoch`` applies its rule. The trainer
never names a method.

The LR schedule is timm's, stepped every update with the fractional epoch
``epoch - 1 + step / steps_in_this_epoch``: milestones and warm-up land on the right epochs however much
a method shrinks an epoch; a method may scale an epoch's LR (``lr_factor``).

A checkpoint is the sum of the components' state dicts (model, optimizer, scaler, scheduler, method,
feed, progress, hooks; per rank: RNG states, the epoch meter, the method's rank state), so a run resumes
bit-exactly, also in the middle of an epoch. Distributed: torchrun / slurm (``pretrain.env``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from . import checkpoint as ckpt
from .config import TrainConfig
from .cost import TRAIN_FLOPS_PER_FORWARD, forward_flops
from .data import DataError, batch_random_erasing, build_dataset
from .env import Env, all_gather_objects, all_sum, first_error
from .hooks import Hook
from .methods import build_method
from .methods.base import Batch, EpochResult, EpochTotals, RunInfo, StepInfo, StepRecord
from .models import build_model
from .recipe import BatchMixer, Criterion, Ema, build_optimizer, build_scheduler, schedule_time
from .selection.samplers import derive_seed
from .services import Services


@dataclass
class Progress:
    """Where the run is and what it has cost so far (all ranks alike; checkpointed)."""

    epoch: int = 1  # the epoch in progress (1-based)
    step_in_epoch: int = 0
    global_step: int = 0
    epochs_done: int = 0
    wall_s: float = 0.0
    trained: int = 0  # samples trained, as the method counts them
    train_flops: float = 0.0
    selection_flops: float = 0.0
    top1: float | None = None
    top5: float | None = None


@dataclass
class EpochMeter:
    """This rank's figures of the epoch in progress (checkpointed per rank for a mid-epoch resume)."""

    loss_sum: float = 0.0
    count: int = 0
    forwards: dict[int, int] = field(default_factory=dict)  # untrained forwards by resolution
    wall_s: float = 0.0

    def add_forwards(self, resolution: int, samples: int) -> None:
        """Count ``samples`` forwards at ``resolution`` px done outside training (a method's scoring)."""
        self.forwards[int(resolution)] = self.forwards.get(int(resolution), 0) + int(samples)


@dataclass
class EpochRecord:
    """One epoch's line of log.jsonl (``extra``: the method's own fields, appended)."""

    epoch: int
    trained_samples: int
    dataset_size: int
    kept_fraction: float
    train_flops: float
    selection_flops: float
    train_loss: float
    lr: float
    wall_s: float = 0.0
    top1: float | None = None
    top5: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> dict[str, Any]:
        return {"type": "epoch", "epoch": self.epoch, "trained_samples": self.trained_samples,
                "dataset_size": self.dataset_size, "kept_fraction": self.kept_fraction,
                "train_flops": self.train_flops, "selection_flops": self.selection_flops, "wall_s": self.wall_s,
                "train_loss": self.train_loss, "lr": self.lr, "top1": self.top1, "top5": self.top5, **self.extra}


def pad_batch(images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None,
              size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of n padded to ``size`` with copies of its first positions (cyclically) at loss weight 0."""
    n = images.shape[0]
    rep = torch.arange(size - n, device=images.device) % n
    w = weights if weights is not None else torch.ones(n, device=images.device)
    return (torch.cat([images, images[rep]]), torch.cat([targets, targets[rep.to(targets.device)]]),
            torch.cat([w, torch.zeros(size - n, device=w.device, dtype=w.dtype)]))


def padded_sizes(batch_size: int, sizes: Sequence[int]) -> tuple[int, ...]:
    """The fixed sizes training batches are padded up to (``runtime.pad_batches``): the sizes a method trains
    at (``SelectionMethod.train_batch_sizes``), its full batch b as b + 1 (the feed folds a single last
    sample into the last batch, so one graph holds both), and b + 1 always (any batch up to it)."""
    return tuple(sorted({batch_size + 1, *(s for s in sizes if s != batch_size)}))


def build_datasets(cfg: TrainConfig, env: Env):
    """Train and val sets; a data problem on any rank stops every rank with the same one line."""
    try:
        sets = tuple(build_dataset(cfg.raw["data"], split, cfg.seed, env.rank, env.world, uint8=True)
                     for split in ("train", "val"))
        message = None
    except DataError as exc:
        message = str(exc)
    message = first_error(message)
    if message:
        raise DataError(message)
    return sets


class Trainer:
    """Builds the run from a checked config and trains it; see the module docstring."""

    def __init__(self, cfg: TrainConfig, env: Env, work_dir: str | Path, git_rev: str = "unknown",
                 hooks: Sequence[Hook] = ()):
        self.cfg, self.env, self.work_dir, self.git_rev = cfg, env, Path(work_dir), git_rev
        rt, data = cfg.runtime, cfg.data
        if not env.cuda and rt.cpu_threads:
            torch.set_num_threads(rt.cpu_threads)
        self.amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(rt.amp) if env.cuda else None
        self.channels_last = env.cuda and rt.channels_last
        self.train_set, self.val_set = build_datasets(cfg, env)
        n, b = len(self.train_set), data.batch_size
        self.method = build_method(cfg.method, RunInfo(n, cfg.schedule.epochs, b, data.img_size, env.world,
                                                       env.rank, cfg.seed))
        self.plan = self.method.plan()

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank and for any world size
        num_classes = data.num_classes or self.train_set.num_classes
        self.model = build_model(cfg.model.arch, num_classes, **cfg.model.kwargs).to(env.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._flops: dict[int, float] = {}
        self.fwd = self.forward_flops(data.img_size)
        o = cfg.optim  # the recipe (pretrain.recipe): timm's optimizer, schedule, loss, Mixup, EMA
        self.optimizer = build_optimizer(self.model, o, o.lr * b * env.world * o.accum_steps / o.lr_batch)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, self.plan)
        self.criterion = Criterion(cfg.loss, o.label_smoothing, env.device)
        self.mixer = (BatchMixer(cfg.mixup, o.label_smoothing, num_classes, derive_seed(cfg.seed, "mixup", env.rank))
                      if cfg.mixup else None)
        self.erase = batch_random_erasing(cfg.raw["data"], env.device)
        self.ema = Ema(cfg.ema, self.model) if cfg.ema else None
        # fixed batch shapes (compiled once): the sizes the method trains at, the full batch as b + 1
        pad = rt.pad_batches if rt.pad_batches is not None else rt.compile
        self.batch_sizes = padded_sizes(b, self.method.train_batch_sizes()) if pad else ()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        self.feed = self.method.build_feed(self.train_set, data.num_workers)
        self.services = Services(self.model, env, self.train_set, self.model_input, batch_size=data.batch_size,
                                 workers=data.num_workers, img_size=data.img_size,
                                 count_forwards=lambda resolution, samples: self.meter.add_forwards(resolution, samples))
        self.method.setup(self.services)
        torch.manual_seed(derive_seed(cfg.seed, "train", env.rank))
        random.seed(derive_seed(cfg.seed, "train", env.rank))  # checkpointed like torch's: reproducible too
        np.random.seed(derive_seed(cfg.seed, "train", env.rank) % 2**32)
        self.progress, self.meter = Progress(), EpochMeter()
        self.hooks = list(hooks)  # the run's hooks, in calling order (pretrain.cli.default_hooks: a CLI run's)
        self.net: torch.nn.Module = self.model  # the module trained through (DDP, compiled); set in train()
        self.stop_reason: str | None = None  # set by request_stop(); the run stops after the current step
        self.record: EpochRecord | None = None  # the epoch being closed (hooks read and complete it)
        self.epoch_result = EpochResult()
        self.resumed = False
        self.meta_extra: dict[str, Any] = {}  # hooks' blocks for the meta (probe, bn_recalibrate)
        if cfg.ema:  # which weights backbone.pth holds, and the EMA that made them
            self.meta_extra["ema"] = {"published": cfg.ema.publish, **dataclasses.asdict(cfg.ema)}
        self.ddp: DistributedDataParallel | None = None  # set in train() on more than one rank
        self.steps = 0  # steps of the epoch in progress
        self._t0 = time.time()

    # -- the loop -----------------------------------------------------------------------------------
    def train(self, resume: dict | None = None) -> dict | None:
        """Train (from ``resume``, a checkpoint dict, if given); the summary, or None when stopped early."""
        if resume is not None:
            self.load_state_dict(resume)
        self.resumed = resume is not None
        ddp = self.model
        if self.env.world > 1:
            ddp = self.ddp = DistributedDataParallel(self.model, device_ids=[self.env.local_rank] if self.env.cuda else None)
        self.net = torch.compile(ddp) if self.cfg.runtime.compile else ddp
        self.call("before_train")
        while self.progress.epoch <= self.plan.epochs:
            if not self.run_epoch():
                return None
        summary = self.summary()
        if self.env.main:
            ckpt.save_backbone(self.published_model().state_dict(),
                               {**ckpt.make_meta(self.cfg.raw, summary, self.git_rev), **self.meta_extra}, self.work_dir)
        self.call("after_train")
        return summary

    def run_epoch(self) -> bool:
        """Train the rest of the epoch in progress and close it; False when the run stops early."""
        p = self.progress
        self.model.train()
        if p.step_in_epoch == 0:
            self.meter = EpochMeter()
        self.method.begin_epoch(p.epoch)
        batches = self.feed.begin(p.epoch, p.step_in_epoch)
        for hook in self.hooks:
            batches = hook.wrap_batches(self, batches)
        self.steps = self.feed.steps_in_epoch()
        self._t0 = time.time()
        self.call("before_epoch")
        for images, targets, indices in batches:
            self.call("before_step")
            self.run_step(self.to_device(images, targets, indices))
            self.call("after_step")
            if self.stop_reason and p.step_in_epoch < self.steps:
                self.save_checkpoint(f"step_{p.global_step}.pth", {})
                self.call("on_stop")
                return False
        self.close_epoch()
        return not (self.stop_reason and self.progress.epochs_done < self.plan.epochs)

    def to_device(self, images: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> Batch:
        """The one place a loaded batch moves to the device (indices stay on the CPU); random erasing, when
        configured, runs here on the normalised batch (timm's prefetcher does it there too)."""
        x = self.model_input(images)
        if self.erase is not None:
            x = self.erase(x)
        return Batch(x, targets.to(self.env.device, non_blocking=True), indices)

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """A loaded uint8 batch as model input: copied to the device (non-blocking from pinned memory),
        normalised there (``pretrain.data.BatchNormalize``: bitwise the per-sample float pipeline)."""
        return self.train_set.normalize(images.to(self.env.device, non_blocking=True))

    def run_step(self, batch: Batch) -> torch.Tensor:
        """One step: LR, the method's pick, Mixup, forward, ``mean(w * loss)``, backward, record; the losses.

        The per-sample losses are each position's loss against its (mixed) target (``Criterion``); the
        method records them for the dataset index at that position. With ``optim.accum_steps`` = k the
        optimizer updates after every k-th step of an epoch (and after its last), each step's loss
        divided by its group's length (timm's train.py), gradients synchronised only on the last.
        """
        p = self.progress
        step = StepInfo(p.epoch, p.step_in_epoch, self.steps, p.global_step)
        self.scheduler.step(schedule_time(self.cfg.schedule, p.epoch, p.step_in_epoch, self.steps))
        factor = self.method.lr_factor(p.epoch)
        if factor != 1.0:
            for group in self.optimizer.param_groups:
                group["lr"] *= factor
        batch = self.method.select(batch, step)
        images, targets = batch.images, batch.targets
        if self.mixer is not None:  # after the pick: a method scores clean images (docs/selection.md)
            images, targets = self.mixer(images, targets, p.epoch)
        images = images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        accum = self.cfg.optim.accum_steps
        position = p.step_in_epoch % accum
        group = min(accum, self.steps - (p.step_in_epoch - position))
        update = position == group - 1
        sync = self.ddp.no_sync() if self.ddp is not None and not update else contextlib.nullcontext()
        n, weights = images.shape[0], batch.weights
        size = next((s for s in self.batch_sizes if s >= n), n)
        if size > n:  # pad with copies of the first positions at loss weight 0 (one graph per size)
            images, targets, weights = pad_batch(images, targets, weights, size)
        with sync:
            with torch.autocast(images.device.type, dtype=self.amp, enabled=self.amp is not None):
                logits = self.net(images)
            logits = logits.float()
            losses = self.criterion(logits, targets)
            if size > n:
                loss = (weights * losses).sum() / n
                losses, logits = losses[:n], logits[:n]
            else:
                loss = losses.mean() if weights is None else (weights * losses).mean()
            if position == 0:
                self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss if group == 1 else loss / group).backward()  # a no-op scale unless fp16
        if update:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.model)
        losses = losses.detach()
        self.method.record(StepRecord(batch.indices, losses, logits.detach(), batch.targets, step))
        self.meter.loss_sum += losses.sum().item()  # a sync point; cheap next to a step
        self.meter.count += losses.numel()
        p.step_in_epoch += 1
        p.global_step += 1
        return losses

    def close_epoch(self) -> None:
        """The epoch's all-rank totals, the method's end-of-epoch rule, hooks, then the progress update."""
        p, m, epoch = self.progress, self.meter, self.progress.epoch
        resolutions = sorted(m.forwards)
        loss_sum, count, *forwards = all_sum([m.loss_sum, m.count, *(m.forwards[r] for r in resolutions)], self.env)
        stats = self.method.epoch_stats(epoch, EpochTotals(int(count), self.steps,
                                                          {r: int(c) for r, c in zip(resolutions, forwards, strict=True)}))
        before = dict(m.forwards)
        self.epoch_result = self.method.end_epoch(epoch)
        # forwards the rule itself ran (e.g. a refresh pass over hidden samples) are the epoch's cost too
        extra_res = sorted(m.forwards)
        extra = all_sum([m.forwards[r] - before.get(r, 0) for r in extra_res], self.env) if extra_res else []
        train_flops = TRAIN_FLOPS_PER_FORWARD * self.fwd * stats.trained_samples
        selection_flops = math.fsum(self.forward_flops(r) * c for r, c in zip(resolutions, forwards, strict=True))
        selection_flops += math.fsum(self.forward_flops(r) * c for r, c in zip(extra_res, extra, strict=True))
        self.record = EpochRecord(epoch, stats.trained_samples, self.plan.num_samples, stats.kept_fraction,
                                  train_flops, selection_flops, loss_sum / max(count, 1),
                                  self.optimizer.param_groups[0]["lr"], extra=dict(self.epoch_result.log))
        self.call("after_epoch_train")  # selection dump, evaluation: they complete self.record
        now = time.time()
        self.record.wall_s = m.wall_s + now - self._t0
        p.epoch, p.step_in_epoch, p.epochs_done = epoch + 1, 0, epoch
        p.wall_s += now - self._t0
        p.trained += stats.trained_samples
        p.train_flops += train_flops
        p.selection_flops += selection_flops
        if self.record.top1 is not None:
            p.top1, p.top5 = self.record.top1, self.record.top5
        self.call("after_epoch")  # log line, checkpoint

    def published_model(self) -> torch.nn.Module:
        """The weights backbone.pth holds: the EMA's with ``ema.publish='ema'``, else the trained ones."""
        return self.ema.module if self.ema is not None and self.cfg.ema.publish == "ema" else self.model

    def evaluate(self) -> tuple[float, float]:
        """Single-crop top-1 / top-5 (%) of the published weights over the whole validation set.

        With an EMA both weights are evaluated: the other one's figures go into the epoch's line as
        ``top1_ema``/``top5_ema`` (or ``top1_raw``/``top5_raw`` when the EMA is published).
        """
        top = self.evaluate_model(self.published_model())
        if self.ema is not None:
            other, suffix = (self.model, "raw") if self.cfg.ema.publish == "ema" else (self.ema.module, "ema")
            top1, top5 = self.evaluate_model(other)
            if self.record is not None:
                self.record.extra.update({f"top1_{suffix}": top1, f"top5_{suffix}": top5})
        return top

    def evaluate_model(self, model: torch.nn.Module) -> tuple[float, float]:
        """Single-crop top-1 / top-5 (%) of ``model``, each rank a disjoint share of the validation set."""
        from .feed import loader

        env = self.env
        training = model.training
        model.eval()
        if dist.is_initialized():  # DDP keeps rank 0's BatchNorm statistics; evaluate every shard with them
            for buf in model.buffers():
                dist.broadcast(buf, 0)
        shard = torch.utils.data.Subset(self.val_set, range(env.rank, len(self.val_set), env.world))
        counts = [0.0, 0.0, 0.0]
        with torch.no_grad():
            for images, targets, _ in loader(shard, self.cfg.data.batch_size, None, self.cfg.data.num_workers, 0):
                logits = model(self.model_input(images)).float()
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu()
                hit = top == targets[:, None]
                counts = [counts[0] + hit[:, 0].sum().item(), counts[1] + hit.any(1).sum().item(), counts[2] + len(targets)]
        c1, c5, n = all_sum(counts, env)
        model.train(training)
        return 100.0 * c1 / n, 100.0 * c5 / n

    # -- hooks, stopping, costs -----------------------------------------------------------------------
    def call(self, event: str) -> None:
        for hook in self.hooks:
            getattr(hook, event)(self)

    def request_stop(self, reason: str) -> None:
        """Stop after the current step: a mid-epoch ``step_<n>.pth`` (or the epoch's checkpoint at its end)."""
        self.stop_reason = self.stop_reason or reason

    def forward_flops(self, resolution: int) -> float:
        """FLOPs of one forward of one sample at ``resolution`` px (counted once per resolution)."""
        if resolution not in self._flops:
            self._flops[resolution] = forward_flops(self.model, (1, 3, resolution, resolution))
        return self._flops[resolution]

    def summary(self) -> dict:
        p, plan = self.progress, self.plan
        baseline = plan.ref_epochs * plan.num_samples
        return {"method": self.cfg.method_type, "arch": self.cfg.model.arch, "epochs": plan.epochs,
                "relative_cost_samples": p.trained / baseline,
                "relative_cost_flops": (p.train_flops + p.selection_flops) / (TRAIN_FLOPS_PER_FORWARD * self.fwd * baseline),
                "top1": p.top1, "top5": p.top5, "wall_s": p.wall_s}

    # -- checkpoints ----------------------------------------------------------------------------------
    def save_checkpoint(self, name: str, summary: dict) -> None:
        """Write ``work_dir/name`` (collective: every rank calls it; rank 0 writes)."""
        if self.progress.step_in_epoch:  # mid-epoch: bank the time of this epoch so far
            now = time.time()
            self.meter.wall_s += now - self._t0
            self.progress.wall_s += now - self._t0
            self._t0 = now
        state = self.state_dict(summary)
        error = None
        if self.env.main:
            try:
                ckpt.save_checkpoint(state, self.work_dir, name)
            except OSError as exc:  # a full disk, a file-size limit: every rank must stop with it
                error = exc
        shared = first_error(None if error is None else str(error))  # collective: ranks learn rank 0's outcome
        if error is not None:
            raise error
        if shared is not None:  # the same one line on this rank, not a collective failing later
            raise OSError(f"{shared} (written by rank 0; rank {self.env.rank} stops with it)")

    def state_dict(self, summary: dict) -> dict:
        """The checkpoint: each component's state (collective)."""
        mine = {"rng": ckpt.rng_state(), "meter": dataclasses.asdict(self.meter),
                "method": self.method.rank_state_dict(), **self.recipe_rank_state()}
        ranks = all_gather_objects(mine, self.env)
        extra = {"ema": self.ema.state_dict()} if self.ema is not None else {}
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "scheduler": self.scheduler.state_dict(),
                "method": self.method.state_dict(), "feed": self.feed.state_dict(),
                "progress": dataclasses.asdict(self.progress), "ranks": ranks,
                "hooks": {type(h).__name__: h.state_dict() for h in self.hooks},
                "config": self.cfg.raw, "world_size": self.env.world, **extra,
                "meta": {**ckpt.make_meta(self.cfg.raw, summary, self.git_rev), **self.meta_extra}}

    def recipe_rank_state(self) -> dict:
        """This rank's recipe state: the Mixup stream, and the gradients of an unfinished accumulation."""
        state: dict[str, Any] = {}
        if self.mixer is not None:
            state["mixup"] = self.mixer.state_dict()
        if self.progress.step_in_epoch % self.cfg.optim.accum_steps:  # stopped inside an accumulation
            state["accum_grads"] = [None if q.grad is None else q.grad.detach().cpu().clone()
                                    for q in self.model.parameters()]
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.feed.load_state_dict(state["feed"])
        self.progress = Progress(**state["progress"])
        for hook in self.hooks:
            hook.load_state_dict(state.get("hooks", {}).get(type(hook).__name__, {}))
        mine = state["ranks"][self.env.rank]
        self.meter = EpochMeter(**mine["meter"])
        self.method.load_rank_state_dict(mine["method"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.mixer is not None:
            self.mixer.load_state_dict(mine["mixup"])
        for q, grad in zip(self.model.parameters(), mine.get("accum_grads") or [], strict=False):
            q.grad = None if grad is None else grad.to(q.device)
        ckpt.set_rng_state(mine["rng"])
