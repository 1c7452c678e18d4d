"""The training recipe around a step, built by timm's own factories from the config.

* optimizer: ``timm.optim.create_optimizer_v2`` (any ``optim.opt``, its kwargs, weight-decay filtering);
* LR schedule: ``timm.scheduler.create_scheduler_v2``, stepped by the trainer with the fractional epoch of
  completed training (:func:`schedule_time`), so warm-up, milestones and cosine land on the same epochs
  however much a selection method shrinks an epoch;
* criterion: per-sample losses whose batch mean is timm's loss (:class:`Criterion`: label-smoothed CE,
  soft-target CE, ``timm.loss.BinaryCrossEntropy``);
* Mixup/CutMix: ``timm.data.Mixup`` on the device batch with its own checkpointed NumPy RNG
  (:class:`BatchMixer`);
* EMA: ``timm.utils.ModelEmaV3`` (:class:`Ema`), updated after every optimizer update.

What a selection method records under mixing is the per-sample loss of each position against its mixed
target (docs/selection.md, "Losses under mixing"); the contract is :meth:`Criterion.__call__`.
"""
from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.mixup import mixup_target
from timm.loss import BinaryCrossEntropy
from timm.optim import create_optimizer_v2, list_optimizers
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import EmaConfig, LossConfig, MixupConfig, OptimConfig, ScheduleConfig
    from .methods.base import Plan

__all__ = ["SCHEDULES", "BatchMixer", "Criterion", "Ema", "build_optimizer", "build_scheduler", "check_optimizer",
           "check_scheduler", "check_transforms", "optimizer_args", "scheduler_args", "schedule_time"]

# 'step' is ours (÷decay_rate after each of `milestones` full epochs: timm's multistep, compensated);
# the rest are create_scheduler_v2's names ('plateau' needs a metric, 'none' no schedule: left out)
SCHEDULES = ("step", "cosine", "tanh", "poly", "constant", "wsd", "rsqrt")
_RESERVED = {"opt", "lr", "momentum", "weight_decay", "filter_bias_and_bn"}
_SCHED_RESERVED = {"sched", "num_epochs", "warmup_epochs", "warmup_lr", "min_lr", "decay_milestones",
                   "decay_rate", "step_on_epochs", "updates_per_epoch"}


# -- optimizer ------------------------------------------------------------------------------------------
def optimizer_args(optim: OptimConfig, lr: float) -> dict[str, Any]:
    """The ``create_optimizer_v2`` keyword arguments of a config at learning rate ``lr``."""
    return dict(opt=optim.opt, lr=lr, momentum=optim.momentum, weight_decay=optim.weight_decay,
                filter_bias_and_bn=optim.filter_bias_and_bn, **optim.kwargs)


def build_optimizer(model: nn.Module, optim: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """timm's optimizer at ``lr`` (the trainer's: ``optim.lr`` x global batch / ``optim.lr_batch``, the global
    batch counting accumulated steps, as timm's train.py does)."""
    return create_optimizer_v2(model, **optimizer_args(optim, lr))


def check_optimizer(optim: OptimConfig) -> None:
    """An unknown ``optim.opt`` (with a suggestion) or kwargs timm's optimizer rejects: one ConfigError line."""
    names = list_optimizers()
    if optim.opt not in names:
        close = difflib.get_close_matches(str(optim.opt), names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"optim.opt {optim.opt!r} is not a timm optimizer{hint}")
    if not isinstance(optim.kwargs, dict):
        raise ConfigError(f"optim.kwargs must be a dict, got {optim.kwargs!r}")
    clash = sorted(_RESERVED & set(optim.kwargs))
    if clash:
        raise ConfigError(f"optim.kwargs must not set {', '.join(clash)} (set optim.{clash[0]} instead)")
    try:  # a two-layer model exercises the weight-decay filter too
        build_optimizer(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), optim, optim.lr)
    except Exception as exc:  # noqa: BLE001 -- any rejection by timm or the optimizer class is a config error
        raise ConfigError(f"optim: timm's {optim.opt!r} rejects {dict(optim.kwargs)}: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


# -- schedule -------------------------------------------------------------------------------------------
def scheduler_args(schedule: ScheduleConfig, plan: Plan) -> dict[str, Any]:
    """``create_scheduler_v2`` keyword arguments, in epochs of training (stepped with fractional epochs).

    A plan of fewer epochs than its baseline (``plan.epochs < plan.ref_epochs``) scales the milestones alike.
    timm's MultiStepLRScheduler applies milestone m from t = m - 1 (its ``t + 1`` convention for per-epoch
    stepping); we step with epochs of completed training, so ``m + 1`` makes the decay start exactly after
    m full epochs.
    """
    common = dict(num_epochs=plan.epochs, warmup_epochs=schedule.warmup_epochs, warmup_lr=schedule.warmup_lr,
                  min_lr=schedule.min_lr, **schedule.kwargs)
    if schedule.sched == "step":
        scale = plan.epochs / plan.ref_epochs
        return dict(sched="multistep", decay_milestones=[m * scale + 1 for m in schedule.milestones],
                    decay_rate=schedule.decay_rate, **common)
    if schedule.sched == "poly":
        common["decay_rate"] = schedule.decay_rate  # timm: the polynomial power
    return dict(sched=schedule.sched, **common)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig, plan: Plan):
    """timm's scheduler for the plan (see :func:`scheduler_args`); step it with :func:`schedule_time`."""
    return create_scheduler_v2(optimizer, **scheduler_args(schedule, plan))[0]


def schedule_time(schedule: ScheduleConfig, epoch: int, step: int, steps: int) -> float:
    """The scheduler's time at ``step`` of 1-based ``epoch``: completed epochs, fractional unless
    ``schedule.step_on_epochs`` (then the LR of an epoch is the one at its start, as timm's train.py)."""
    return float(epoch - 1) if schedule.step_on_epochs else epoch - 1 + step / steps


def check_scheduler(schedule: ScheduleConfig) -> None:
    if not isinstance(schedule.kwargs, dict):
        raise ConfigError(f"schedule.kwargs must be a dict, got {schedule.kwargs!r}")
    clash = sorted(_SCHED_RESERVED & set(schedule.kwargs))
    if clash:
        raise ConfigError(f"schedule.kwargs must not set {', '.join(clash)} (a schedule key or the trainer's)")
    from .methods.base import Plan

    plan = Plan("check", schedule.epochs, schedule.epochs, (1,) * schedule.epochs, 1, 1.0)
    try:
        build_scheduler(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), schedule, plan)
    except Exception as exc:  # noqa: BLE001 -- whatever timm rejects is a config error
        raise ConfigError(f"schedule: timm's create_scheduler_v2 rejects {schedule.sched!r} with "
                          f"{dict(schedule.kwargs)}: {type(exc).__name__}: {exc}") from None


# -- transforms -----------------------------------------------------------------------------------------
def check_transforms(data: dict[str, Any]) -> None:
    """Build the train and eval transforms of a ``data`` section once (no images needed): a bad
    ``auto_augment`` string, interpolation or jitter is one ConfigError line, before any data is read."""
    from .data import build_transform

    values = {k: v for k, v in data.items() if v is not None}
    for train in (True, False):
        try:
            build_transform(values, train, uint8=True)
        except Exception as exc:  # noqa: BLE001 -- timm raises assorted types for a bad augmentation spec
            split = "training" if train else "evaluation"
            raise ConfigError(f"data: timm's create_transform rejects the {split} transform "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    mode = data.get("re_mode")
    if mode is not None and mode not in ("const", "rand", "pixel"):
        raise ConfigError(f"data.re_mode must be 'const', 'rand' or 'pixel', got {mode!r}")
    prob = data.get("re_prob")
    if prob is not None and not (isinstance(prob, (int, float)) and 0 <= prob <= 1):
        raise ConfigError(f"data.re_prob must be in [0, 1], got {prob!r}")


# -- criterion ------------------------------------------------------------------------------------------
class Criterion:
    """Per-sample training losses (float32, one per position) whose batch mean is timm's reduced loss.

    * ``loss.type='ce'``, hard targets: ``cross_entropy(label_smoothing=s)`` (= timm's
      ``LabelSmoothingCrossEntropy``); dense (mixed) targets: soft-target CE, ``-sum_c t_c log p_c``
      (= timm's ``SoftTargetCrossEntropy``);
    * ``loss.type='bce'``: ``timm.loss.BinaryCrossEntropy`` (smoothing of hard targets, target threshold,
      pos_weight) unreduced, then the mean over classes (its ``reduction='mean'`` divided by nothing else),
      or the sum with ``bce_sum`` (its ``sum_classes``).
    """

    def __init__(self, loss: LossConfig, smoothing: float, device: torch.device | str = "cpu"):
        self.type, self.smoothing, self.sum_classes = loss.type, float(smoothing), loss.bce_sum
        self.bce = None
        if loss.type == "bce":
            self.bce = BinaryCrossEntropy(smoothing=smoothing, target_threshold=loss.bce_target_thresh,
                                          reduction="none", pos_weight=loss.bce_pos_weight).to(device)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.bce is not None:
            per_class = self.bce(logits, targets)
            return per_class.sum(-1) if self.sum_classes else per_class.mean(-1)
        if targets.dim() == 1:
            return F.cross_entropy(logits, targets, reduction="none", label_smoothing=self.smoothing)
        return F.cross_entropy(logits, targets, reduction="none")


# -- Mixup / CutMix ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _numpy_state(holder: dict[str, Any]) -> Iterator[None]:
    """Run with NumPy's global RNG set to ``holder['state']`` (timm's Mixup draws from it), then save the
    advanced state back and restore the global one: mixing draws from a stream of its own."""
    saved = np.random.get_state()
    np.random.set_state(holder["state"])
    try:
        yield
    finally:
        holder["state"] = np.random.get_state()
        np.random.set_state(saved)


class BatchMixer:
    """``timm.data.Mixup`` on a device batch, its random draws from a checkpointed stream of its own.

    Pairing is timm's: position i is mixed with position ``B - 1 - i``; the returned targets are dense
    (smoothed, mixed) rows in batch order. A batch of odd size B mixes its first B - 1 positions and
    trains the last one unmixed with its smoothed one-hot target (timm's Mixup needs an even batch; a
    selection method's last batch of an epoch may be odd, and it must still be trained and scored).
    """

    def __init__(self, cfg: MixupConfig, smoothing: float, num_classes: int, seed: int):
        self.cfg, self.num_classes, self.smoothing = cfg, num_classes, smoothing
        self.mixup = Mixup(mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha,
                           cutmix_minmax=cfg.cutmix_minmax, prob=cfg.prob, switch_prob=cfg.switch_prob,
                           mode=cfg.mode, correct_lam=cfg.correct_lam, label_smoothing=smoothing,
                           num_classes=num_classes)
        self.rng = {"state": np.random.RandomState(seed % 2**32).get_state()}

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix ``images`` in place; the dense targets. ``epoch`` (1-based) switches mixing off from
        ``mixup.off_epoch`` on (timm's ``--mixup-off-epoch``, counted in 0-based epochs)."""
        self.mixup.mixup_enabled = not (self.cfg.off_epoch and epoch - 1 >= self.cfg.off_epoch)
        n = images.shape[0]
        even = n - n % 2
        with _numpy_state(self.rng):
            if even == n:
                return self.mixup(images, targets)
            mixed = self.mixup(images[:even], targets[:even])[1] if even else targets.new_empty(0, self.num_classes)
        last = mixup_target(targets[even:], self.num_classes, 1.0, self.smoothing)
        return images, torch.cat([mixed.to(last.dtype), last])

    def state_dict(self) -> dict[str, Any]:
        return {"numpy": self.rng["state"]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng["state"] = state["numpy"]


# -- EMA --------------------------------------------------------------------------------------------------
class Ema:
    """``timm.utils.ModelEmaV3`` of a model, updated after every optimizer update with timm's update count."""

    def __init__(self, cfg: EmaConfig, model: nn.Module):
        self.cfg = cfg
        self.ema = ModelEmaV3(model, decay=cfg.decay, min_decay=cfg.min_decay, update_after_step=cfg.update_after_step,
                              use_warmup=cfg.warmup, warmup_gamma=cfg.warmup_gamma, warmup_power=cfg.warmup_power,
                              exclude_buffers=cfg.exclude_buffers)
        self.updates = 0

    @property
    def module(self) -> nn.Module:
        return self.ema.module

    def update(self, model: nn.Module) -> None:
        self.updates += 1  # timm's train.py: num_updates after the increment
        self.ema.update(model, step=self.updates)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.ema.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
