"""The pre-training config schema: typed sections with their defaults, checked once, before any data is read.

A config file (``configs/pretrain/*.py``, mmengine format) holds the sections ``model``, ``data``,
``optim``, ``schedule``, ``runtime`` and ``method``, plus ``seed`` and ``work_dir``. :func:`build_config`
turns the merged mmengine ``Config`` into a :class:`TrainConfig`; an unknown key is rejected with a
suggestion, a bad value with one line naming it. ``method`` is checked by its registered class
(``pretrain.methods``): its keys belong to the method.

Defaults live here and nowhere else. The exception is the data loader's own keys (augmentation, folder
names, image checks): :mod:`pretrain.data` reads them with its defaults from ``data`` as written; they
are declared here so that a misspelt one is caught.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, unknown_keys_error
from .sections import BNRecalibrate, ProbeConfig, build_section, parse_signals

__all__ = ["DataConfig", "EmaConfig", "LossConfig", "MixupConfig", "ModelConfig", "OptimConfig", "RuntimeConfig",
           "ScheduleConfig", "TrainConfig", "build_config"]

REQUIRED = ("model.arch", "data.type", "data.batch_size", "data.img_size", "schedule.epochs", "method.type", "optim.lr")
TOP_LEVEL = ("model", "data", "optim", "schedule", "runtime", "method", "seed", "work_dir", "probe", "bn_recalibrate",
             "loss", "mixup", "ema")


def _positive_int(where: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    arch: str  # a timm model name or a paper preset (pretrain.models.PRESETS)
    kwargs: dict = field(default_factory=dict)  # passed to timm.create_model (e.g. drop_path_rate)

    def validate(self) -> None:
        from .models import check_model_kwargs, resolve_arch

        resolve_arch(self.arch)
        check_model_kwargs(self.arch, self.kwargs)  # a misspelt key: one line now, not a traceback later


@dataclass(frozen=True)
class DataConfig:
    type: str  # pretrain.data.DATASET_TYPES
    batch_size: int  # per rank
    img_size: int  # training resolution
    num_workers: int = 0
    num_samples: int | None = None  # for --dry-run only; a run counts the data
    num_classes: int | None = None  # default: the dataset's
    # the loader's keys (pretrain.data reads them, with its own defaults)
    root: str | None = None
    scale: tuple | None = None
    hflip: float | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    verify: str | None = None
    train_dir: str | None = None
    val_dir: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    mean: tuple | None = None
    std: tuple | None = None
    # timm.data.create_transform's augmentation (pretrain.data.build_transform; None = today's default)
    ratio: tuple | None = None  # random-resized crop aspect range
    vflip: float | None = None
    color_jitter: Any = None  # float or (b, c, s[, h]); ignored by timm under RandAugment
    auto_augment: str | None = None  # e.g. 'rand-m6-mstd0.5-inc1'
    train_interpolation: str | None = None  # default: interpolation; 'random' as timm's train.py
    test_size: int | None = None  # evaluation resolution (default img_size)
    re_prob: float | None = None  # random erasing (on the device batch, as timm's prefetcher)
    re_mode: str | None = None
    re_count: int | None = None
    on_bad_image: str | None = None
    max_bad_images: int | None = None

    def validate(self) -> None:
        from .data import DATASET_TYPES

        if self.type not in DATASET_TYPES:
            raise ConfigError(f"data.type must be one of {', '.join(DATASET_TYPES)}, got {self.type!r}")
        for key in ("batch_size", "img_size"):
            _positive_int(f"data.{key}", getattr(self, key))
        _positive_int("data.num_samples", self.num_samples, allow_none=True)
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be an integer >= 0, got {self.num_workers!r}")
        _positive_int("data.test_size", self.test_size, allow_none=True)
        from .recipe import check_transforms

        check_transforms(dataclasses.asdict(self))


@dataclass(frozen=True)
class OptimConfig:
    lr: float  # at a global batch of lr_batch; scaled linearly with batch_size x world size
    lr_batch: int = 256
    momentum: float = 0.9
    weight_decay: float = 1e-4
    filter_bias_and_bn: bool = False  # timm: no weight decay on biases and norm layers
    label_smoothing: float = 0.0  # CE / BCE smoothing; under Mixup the mixed targets' (timm's --smoothing)
    opt: str = "sgd"  # any timm.optim.list_optimizers() name: sgd, adamw, lamb, lars, ...
    kwargs: dict = field(default_factory=dict)  # more create_optimizer_v2 arguments (eps, betas, layer_decay...)
    accum_steps: int = 1  # gradient accumulation: one update every accum_steps batches

    def validate(self) -> None:
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ConfigError(f"optim.lr must be a positive number, got {self.lr!r}")
        _positive_int("optim.lr_batch", self.lr_batch)
        _positive_int("optim.accum_steps", self.accum_steps)
        if not isinstance(self.label_smoothing, (int, float)) or not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        from .recipe import check_optimizer

        check_optimizer(self)


@dataclass(frozen=True)
class ScheduleConfig:
    epochs: int  # of the full-data baseline (a method's plan may train fewer)
    sched: str = "step"  # 'step' (÷decay_rate at milestones) or a timm schedule: cosine, tanh, poly, ...
    milestones: tuple[int, ...] = ()
    decay_rate: float = 0.1
    warmup_epochs: float = 0
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    step_on_epochs: bool = False  # LR constant within an epoch (timm train.py's default) instead of per update
    kwargs: dict = field(default_factory=dict)  # more create_scheduler_v2 arguments (cycle_mul, k_decay, ...)

    def validate(self) -> None:
        _positive_int("schedule.epochs", self.epochs)
        from .recipe import SCHEDULES, check_scheduler

        if self.sched not in SCHEDULES:
            import difflib

            close = difflib.get_close_matches(str(self.sched), SCHEDULES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"schedule.sched must be one of {', '.join(SCHEDULES)}, got {self.sched!r}{hint}")
        check_scheduler(self)
        milestones = list(self.milestones)
        if any(b <= a for a, b in itertools.pairwise(milestones)) or any(m < 1 for m in milestones):
            raise ConfigError(f"schedule.milestones must be increasing positive epochs, got {milestones}")


@dataclass(frozen=True)
class LossConfig:
    """The training criterion (timm.loss): 'ce' (label-smoothed CE; soft-target CE under Mixup) or 'bce'."""

    type: str = "ce"
    bce_target_thresh: float | None = None  # timm BinaryCrossEntropy(target_threshold=)
    bce_sum: bool = False  # sum over classes instead of the mean
    bce_pos_weight: float | None = None

    def validate(self) -> None:
        if self.type not in ("ce", "bce"):
            raise ConfigError(f"loss.type must be 'ce' or 'bce', got {self.type!r}")
        if self.type != "bce" and (self.bce_target_thresh is not None or self.bce_sum or self.bce_pos_weight is not None):
            raise ConfigError("loss.bce_* keys need loss.type='bce'")


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


@dataclass(frozen=True)
class MixupConfig:
    """timm.data.Mixup on the device batch (label smoothing: optim.label_smoothing)."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    cutmix_minmax: tuple | None = None
    prob: float = 1.0
    switch_prob: float = 0.5
    mode: str = "batch"  # batch | pair | elem
    correct_lam: bool = True
    off_epoch: int = 0  # epochs from this one on are not mixed (0: never off)

    def validate(self) -> None:
        if self.mode not in ("batch", "pair", "elem"):
            raise ConfigError(f"mixup.mode must be 'batch', 'pair' or 'elem', got {self.mode!r}")
        for key in ("mixup_alpha", "cutmix_alpha"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"mixup.{key} must be a number >= 0, got {value!r}")
        if not (self.mixup_alpha > 0 or self.cutmix_alpha > 0 or self.cutmix_minmax is not None):
            raise ConfigError("mixup needs mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax")
        for key in ("prob", "switch_prob"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"mixup.{key} must be in [0, 1], got {value!r}")
        minmax = self.cutmix_minmax
        if minmax is not None and not (isinstance(minmax, (tuple, list)) and len(minmax) == 2
                                       and all(_number(v) for v in minmax) and 0 < minmax[0] < minmax[1] <= 1):
            raise ConfigError(f"mixup.cutmix_minmax must be (min, max) with 0 < min < max <= 1, got {minmax!r}")
        if not isinstance(self.correct_lam, bool):
            raise ConfigError(f"mixup.correct_lam must be True or False, got {self.correct_lam!r}")
        if isinstance(self.off_epoch, bool) or not isinstance(self.off_epoch, int) or self.off_epoch < 0:
            raise ConfigError(f"mixup.off_epoch must be an integer >= 0, got {self.off_epoch!r}")


@dataclass(frozen=True)
class EmaConfig:
    """timm.utils.ModelEmaV3 of the weights, updated after every optimizer update, evaluated beside them."""

    decay: float = 0.9998
    min_decay: float = 0.0
    warmup: bool = False  # timm's use_warmup (decay ramps up with the update count)
    warmup_gamma: float = 1.0
    warmup_power: float = 2 / 3
    update_after_step: int = 0
    exclude_buffers: bool = False
    publish: str = "raw"  # which weights backbone.pth holds: 'raw' or 'ema' (recorded in the meta)

    def validate(self) -> None:
        for key in ("decay", "min_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"ema.{key} must be in [0, 1], got {value!r}")
        for key in ("warmup_gamma", "warmup_power"):
            value = getattr(self, key)
            if not _number(value) or value <= 0:
                raise ConfigError(f"ema.{key} must be a number > 0, got {value!r}")
        for key in ("warmup", "exclude_buffers"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"ema.{key} must be True or False, got {getattr(self, key)!r}")
        if self.publish not in ("raw", "ema"):
            raise ConfigError(f"ema.publish must be 'raw' or 'ema', got {self.publish!r}")
        if isinstance(self.update_after_step, bool) or not isinstance(self.update_after_step, int) or self.update_after_step < 0:
            raise ConfigError(f"ema.update_after_step must be an integer >= 0, got {self.update_after_step!r}")


@dataclass(frozen=True)
class RuntimeConfig:
    amp: str | None = None  # None, 'bf16' or 'fp16' (GPU only; --amp sets bf16)
    channels_last: bool = True  # GPU only
    compile: bool = False  # torch.compile the (DDP) model
    cpu_threads: int | None = None  # torch threads on the CPU (None: torch's default)
    checkpoint_interval: int = 1  # epoch_<n>.pth every n epochs (and the last)
    eval_interval: int = 1  # validation every n epochs (and the last)
    max_steps: int | None = None  # stop after this many updates with a resumable step_<n>.pth
    preempt_signals: tuple = ("SIGTERM", "SIGUSR1")  # finish the step, step_<n>.pth, exit 75 (pretrain.preempt)
    checkpoint_minutes: float | None = None  # also a step_<n>.pth this often (the newest kept)
    pad_batches: bool | None = None  # pad training batches to fixed sizes (None: when compile; pretrain.trainer)

    def validate(self) -> None:
        if self.amp not in (None, "bf16", "fp16"):
            raise ConfigError(f"runtime.amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        _positive_int("runtime.checkpoint_interval", self.checkpoint_interval)
        _positive_int("runtime.eval_interval", self.eval_interval)
        _positive_int("runtime.cpu_threads", self.cpu_threads, allow_none=True)
        _positive_int("runtime.max_steps", self.max_steps, allow_none=True)
        try:
            parse_signals(self.preempt_signals)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        minutes = self.checkpoint_minutes
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
            raise ConfigError(f"runtime.checkpoint_minutes must be a positive number or None, got {minutes!r}")


@dataclass(frozen=True)
class TrainConfig:
    """A checked pre-training config. ``raw`` is the resolved config as written (checkpoints keep it)."""

    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    runtime: RuntimeConfig
    method: dict  # type + the method's keys, checked by pretrain.methods.build_method
    seed: int
    work_dir: str | None
    raw: dict
    probe: ProbeConfig | None = None  # the probe section (pretrain.sections), or None
    bn_recalibrate: BNRecalibrate | None = None  # the bn_recalibrate section (pretrain.sections), or None
    loss: LossConfig = field(default_factory=LossConfig)
    mixup: MixupConfig | None = None  # None: no mixing
    ema: EmaConfig | None = None  # None: no EMA

    @property
    def method_type(self) -> str:
        return self.method["type"]


def _section(cls: type, values: Mapping[str, Any] | None, where: str):
    return build_section(cls, values, where)  # the one builder of checked sections (pretrain.sections)


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def build_config(cfg: Any, source: str = "the config") -> TrainConfig:
    """The typed, checked config of a merged mmengine ``Config`` (or its dict); raises :class:`ConfigError`.

    Checks names, types and ranges that need no data: the timm model, the dataset type, the schedule,
    the runtime switches; the method's keys are checked when the method is built (``make_plan``).
    """
    raw = _plain(cfg)
    for key in REQUIRED:
        section, name = key.split(".")
        if name not in (raw.get(section) or {}):
            raise ConfigError(f"{source} does not set {key}")
    unknown = set(raw) - set(TOP_LEVEL)
    if unknown:
        raise unknown_keys_error(source, unknown, TOP_LEVEL)
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    return TrainConfig(
        model=_section(ModelConfig, raw["model"], "model"),
        data=_section(DataConfig, raw["data"], "data"),
        optim=_section(OptimConfig, raw["optim"], "optim"),
        schedule=_section(ScheduleConfig, raw["schedule"], "schedule"),
        runtime=_section(RuntimeConfig, raw.get("runtime"), "runtime"),
        method=dict(raw["method"]),
        seed=seed,
        work_dir=raw.get("work_dir"),
        raw=raw,
        probe=ProbeConfig.from_dict(raw["probe"]) if raw.get("probe") is not None else None,
        bn_recalibrate=BNRecalibrate.from_dict(raw.get("bn_recalibrate")),
        loss=_section(LossConfig, raw.get("loss"), "loss"),
        mixup=_section(MixupConfig, raw["mixup"], "mixup") if raw.get("mixup") is not None else None,
        ema=_section(EmaConfig, raw["ema"], "ema") if raw.get("ema") is not None else None,
    )
