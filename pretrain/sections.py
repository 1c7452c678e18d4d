"""Checked config sections: the one builder, and the sections of a run's optional features.

:func:`build_section` is how every checked section is made from a dict -- the config's sections
(``pretrain.config``), a method's parameters (``pretrain.methods.base.MethodParams``) and the feature
sections below: unknown keys are rejected with a "did you mean", missing required keys are named, lists
become tuples, and the section's ``validate`` raises one line naming the bad key.

The feature sections live here, not beside their features, so that the config schema imports no feature
code (the features -- ``pretrain.probes``, ``pretrain.bn_recalibrate``, ``pretrain.preempt`` -- import
their section from here):

* ``probe=dict(every=K, tasks=[...], knn=dict(...), dense=dict(...))`` (:class:`ProbeConfig`, with the
  kNN and dense probes' own settings :class:`KnnSettings` and :class:`DenseSettings`);
* ``bn_recalibrate=dict(samples=N, seed=S)`` (:class:`BNRecalibrate`);
* ``runtime.preempt_signals`` (:func:`parse_signals`).

Imports: the standard library and :mod:`pretrain.errors` only.
"""
from __future__ import annotations

import dataclasses
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import ConfigError, unknown_keys_error

__all__ = ["TASKS", "VOTES", "BNRecalibrate", "DenseSettings", "KnnSettings", "ProbeConfig", "build_section",
           "parse_signals"]

S = TypeVar("S")


def build_section(cls: type[S], values: Mapping[str, Any] | None, where: str, *context: Any) -> S:
    """The checked dataclass ``cls`` of ``values``; raises a one-line :class:`ConfigError` naming the key.

    ``where`` names the section in messages (``"optim"``, ``"method 'dar'"``, ``"probe.knn"``); ``context``
    is passed on to ``cls.validate`` (e.g. the run a method's parameters are checked against). A
    ``ValueError`` or ``TypeError`` from ``validate`` becomes a :class:`ConfigError` with its message.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields]
    if values is not None and not isinstance(values, Mapping):  # e.g. --cfg-options mixup=abc
        # mmengine's --cfg-options parses lists and tuples but not dicts: "{...}" stays a string
        hint = f"; on the command line set its keys one by one, e.g. {where}.{names[0]}=..." if isinstance(values, str) else ""
        raise ConfigError(f"{where} must be a dict of its keys ({', '.join(names)}), got {values!r}{hint}")
    values = dict(values or {})
    unknown = set(values) - set(names)
    if unknown:
        raise unknown_keys_error(where, unknown, names)
    missing = [f.name for f in fields if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(missing)}")
    try:
        section = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        section.validate(*context)  # type: ignore[attr-defined]
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    return section


def _int_at_least(where: str, value: Any, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{where} must be an integer >= {low}, got {value!r}")


# -- probes -----------------------------------------------------------------------------------------------
TASKS = ("knn", "dense")
VOTES = ("weighted", "majority")
DEFAULT_DENSE_ROOT = "data/tiny/cityscapes"


@dataclass(frozen=True)
class KnnSettings:
    """The kNN probe (``pretrain.probes.knn``)."""

    k: int = 20
    temperature: float = 0.07
    vote: str = "weighted"
    bank: int | None = None  # training images in the memory bank (None: all)
    queries: int | None = None  # validation images classified (None: all)
    seed: int = 0  # which images, when bank / queries subsample

    def __post_init__(self) -> None:
        if self.vote not in VOTES:
            raise ValueError(f"knn.vote must be one of {', '.join(VOTES)}, got {self.vote!r}")
        if self.k < 1 or self.temperature <= 0:
            raise ValueError(f"knn.k must be >= 1 and knn.temperature > 0, got {self.k}, {self.temperature}")
        for name in ("bank", "queries"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"knn.{name} must be >= 1 or None, got {value}")


@dataclass(frozen=True)
class DenseSettings:
    """The dense probe (``pretrain.probes.dense``)."""

    steps: int = 100
    batch_size: int = 4
    lr: float = 0.01
    size: tuple[int, int] | None = None  # (h, w) the images are resized to; None: 2x / 4x the train size
    train_images: int | None = None  # None: all of the set
    val_images: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"dense.steps, dense.batch_size must be >= 1 and dense.lr > 0, got "
                             f"{self.steps}, {self.batch_size}, {self.lr}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 8):
            raise ValueError(f"dense.size must be (height, width) of at least 8 pixels, got {self.size}")


_KNN_KEYS = [f.name for f in dataclasses.fields(KnnSettings)] + ["root"]
_DENSE_KEYS = [f.name for f in dataclasses.fields(DenseSettings)] + ["root", "num_classes"]


@dataclass(frozen=True)
class ProbeConfig:
    """``probe=dict(...)``: what ``pretrain.probes.hook.ProbeHook`` runs (see ``pretrain.probes.build``)."""

    every: int = 1  # probe after every n-th epoch (and the last)
    tasks: tuple[str, ...] = TASKS
    budget: float | None = 0.05  # share of the run's planned training FLOPs for all probes (None: unbounded)
    batch_size: int | None = None  # default: the run's data.batch_size
    cache_mib: float = 1024  # kNN images kept in memory between probes up to this size
    knn: dict = field(default_factory=dict)
    dense: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, where: str = "probe") -> ProbeConfig:
        """The checked section; raises :class:`ConfigError` naming the bad key."""
        return build_section(cls, values, where, where)

    def validate(self, where: str = "probe") -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"{where}.every must be a positive integer, got {self.every!r}")
        if not self.tasks or set(self.tasks) - set(TASKS) or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"{where}.tasks must be distinct names among {', '.join(TASKS)}, got {list(self.tasks)}")
        if self.budget is not None and not 0 < self.budget <= 1:
            raise ConfigError(f"{where}.budget must be in (0, 1] or None, got {self.budget!r}")
        for key, allowed in (("knn", _KNN_KEYS), ("dense", _DENSE_KEYS)):
            extra = set(getattr(self, key)) - set(allowed)
            if extra:
                raise unknown_keys_error(f"{where}.{key}", extra, allowed)
        try:
            self.knn_settings()
            self.dense_settings(32)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def knn_settings(self) -> KnnSettings:
        return KnnSettings(**{k: v for k, v in self.knn.items() if k != "root"})

    def dense_settings(self, img_size: int) -> DenseSettings:
        values = {k: v for k, v in self.dense.items() if k not in ("root", "num_classes")}
        size = tuple(values.pop("size", None) or (2 * img_size, 4 * img_size))
        return DenseSettings(size=size, **values)

    @property
    def dense_root(self) -> str:
        return self.dense.get("root") or DEFAULT_DENSE_ROOT


# -- BatchNorm recalibration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BNRecalibrate:
    """``bn_recalibrate=dict(samples=N, seed=S)`` (``pretrain.bn_recalibrate``)."""

    samples: int  # training images the statistics are averaged over
    seed: int = 0
    batch_size: int | None = None  # default: the run's data.batch_size

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, where: str = "bn_recalibrate") -> BNRecalibrate | None:
        """The checked section, or None when ``values`` is None (no recalibration)."""
        return None if values is None else build_section(cls, values, where, where)

    def validate(self, where: str = "bn_recalibrate") -> None:
        _int_at_least(f"{where}.samples", self.samples, 2)
        _int_at_least(f"{where}.batch_size", self.batch_size, 2, allow_none=True)
        _int_at_least(f"{where}.seed", self.seed, 0)


# -- preemption signals ---------------------------------------------------------------------------------
UNCATCHABLE = {"SIGKILL", "SIGSTOP"}


def parse_signals(names) -> tuple[signal.Signals, ...]:
    """``("SIGTERM", "USR1", ...)`` as signals; ValueError (one line) for a name that is not a catchable signal."""
    out = []
    for name in names or ():
        full = name if str(name).startswith("SIG") else f"SIG{name}"
        if full in UNCATCHABLE or full not in signal.Signals.__members__:
            raise ValueError(f"runtime.preempt_signals: {name!r} is not a signal a process can catch "
                             "(e.g. 'SIGTERM', 'SIGUSR1')")
        out.append(signal.Signals[full])
    return tuple(out)
