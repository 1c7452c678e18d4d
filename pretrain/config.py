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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, unknown_keys_error

__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "RuntimeConfig", "ScheduleConfig", "TrainConfig",
           "build_config"]

REQUIRED = ("model.arch", "data.type", "data.batch_size", "data.img_size", "schedule.epochs", "method.type", "optim.lr")
TOP_LEVEL = ("model", "data", "optim", "schedule", "runtime", "method", "seed", "work_dir", "probe", "bn_recalibrate")


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
        from .models import resolve_arch

        resolve_arch(self.arch)


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


@dataclass(frozen=True)
class OptimConfig:
    lr: float  # at a global batch of lr_batch; scaled linearly with batch_size x world size
    lr_batch: int = 256
    momentum: float = 0.9
    weight_decay: float = 1e-4
    filter_bias_and_bn: bool = False  # timm: no weight decay on biases and norm layers
    label_smoothing: float = 0.0

    def validate(self) -> None:
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ConfigError(f"optim.lr must be a positive number, got {self.lr!r}")
        _positive_int("optim.lr_batch", self.lr_batch)


@dataclass(frozen=True)
class ScheduleConfig:
    epochs: int  # of the full-data baseline (a method's plan may train fewer)
    sched: str = "step"  # 'step' (÷decay_rate at milestones) or 'cosine'
    milestones: tuple[int, ...] = ()
    decay_rate: float = 0.1
    warmup_epochs: float = 0
    warmup_lr: float = 0.0
    min_lr: float = 0.0

    def validate(self) -> None:
        _positive_int("schedule.epochs", self.epochs)
        if self.sched not in ("step", "cosine"):
            raise ConfigError(f"schedule.sched must be 'step' or 'cosine', got {self.sched!r}")
        milestones = list(self.milestones)
        if any(b <= a for a, b in itertools.pairwise(milestones)) or any(m < 1 for m in milestones):
            raise ConfigError(f"schedule.milestones must be increasing positive epochs, got {milestones}")


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

    def validate(self) -> None:
        if self.amp not in (None, "bf16", "fp16"):
            raise ConfigError(f"runtime.amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        _positive_int("runtime.checkpoint_interval", self.checkpoint_interval)
        _positive_int("runtime.eval_interval", self.eval_interval)
        _positive_int("runtime.cpu_threads", self.cpu_threads, allow_none=True)
        _positive_int("runtime.max_steps", self.max_steps, allow_none=True)
        from .preempt import parse_signals

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
    probe: Any = None  # pretrain.probes.build.ProbeConfig, or None
    bn_recalibrate: Any = None  # pretrain.bn_recalibrate.BNRecalibrate, or None

    @property
    def method_type(self) -> str:
        return self.method["type"]


def _section(cls: type, values: Mapping[str, Any] | None, where: str):
    values = dict(values or {})
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = set(values) - set(names)
    if unknown:
        raise unknown_keys_error(where, unknown, names)
    section = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    section.validate()
    return section


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
    from .bn_recalibrate import BNRecalibrate
    from .probes.build import ProbeConfig

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
    )
