"""The selection-method protocol: what a method owns, what the trainer offers it, and the one registry.

A method is one module under ``pretrain/methods/`` holding one class, registered at its definition::

    @register_method("dar")
    class DropAndRefresh(SubsetMethod):
        '''Drop-and-Refresh: drop the easiest samples every I epochs, bring all back at R.'''  # --list-methods
        Params = DaRMethodParams      # a frozen dataclass: the config keys of ``method=dict(type='dar', ...)``

Its pure selection rule (testable on the CPU, no state) lives in ``pretrain/selection/``. The trainer, the
plan, the feed, the CLI and the cost code only ever see this protocol; none of them names a method.

Life cycle (every call below is made by the trainer on every rank, in this order):

* planning, no data and no model (``--dry-run`` and training alike): ``cls(params, run)`` ->
  :meth:`SelectionMethod.plan` -> :func:`describe`;
* building: :meth:`~SelectionMethod.build_feed` (the batches it trains on) -> :meth:`~SelectionMethod.setup`
  (the :class:`TrainerServices`: the model, counted scoring forwards, a forward pass over dataset indices);
  on resume then :meth:`~SelectionMethod.load_state_dict` / :meth:`~SelectionMethod.load_rank_state_dict`;
* each epoch ``e`` (1-based): :meth:`~SelectionMethod.begin_epoch` (also called again when a run resumes
  in the middle of ``e``: keep it idempotent; choose the next epoch's subset in ``end_epoch``, not here);
  :meth:`~SelectionMethod.lr_factor` scales every learning rate of the epoch;
* each step: the feed's batch is moved to the device, then :meth:`~SelectionMethod.select` may keep part of
  it and set per-sample loss weights; the trainer trains on ``mean(w_i * l_i)`` (plain mean without
  weights); :meth:`~SelectionMethod.record` receives the per-sample losses and logits of that forward;
* end of epoch ``e``: :meth:`~SelectionMethod.epoch_stats` (what epoch ``e`` trained, from the all-rank
  totals), then :meth:`~SelectionMethod.end_epoch` (collective: the rule for the next epoch, what to dump
  to ``selection/epoch_XXX.npz`` and extra log fields);
* checkpoint: :meth:`~SelectionMethod.state_dict` (collective; the same on every rank, saved once) and
  :meth:`~SelectionMethod.rank_state_dict` (this rank's own, e.g. a per-rank generator; saved per rank).

Costs: the trainer counts the FLOPs of every trained sample; a method reports the samples it forwards
without training (scoring, refresh passes) through :meth:`TrainerServices.count_forwards`, which the
trainer turns into FLOPs with the model's counted forward at that resolution. ``plan()`` gives the
dry-run's planned cost (or a bound, when the subsets depend on the losses).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch

from ..env import same_on_all_ranks
from ..errors import ConfigError
from ..feed import Feed, SamplerFeed
from ..sections import build_section
from ..selection.samplers import SubsetSampler, UniformSampler

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "METHODS",
    "Batch",
    "EpochResult",
    "EpochStats",
    "EpochTotals",
    "MethodParams",
    "NoParams",
    "Plan",
    "RunInfo",
    "SelectionMethod",
    "StepInfo",
    "StepRecord",
    "SubsetMethod",
    "TrainerServices",
    "build_method",
    "describe",
    "method_class",
    "register_method",
    "same_on_all_ranks",
]


# -- what the method is told and what it returns -------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    """The run a method plans for: sizes known before any data is read (``--dry-run`` assumes N)."""

    num_samples: int  # N, training samples
    epochs: int  # schedule.epochs: the epochs of the full-data baseline (a method may train fewer)
    batch_size: int = 1  # b, per rank
    img_size: int = 224  # training resolution r
    world_size: int = 1
    rank: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Plan:
    """Samples trained per epoch of a run, against a full-data run of ``ref_epochs`` epochs.

    ``bound`` is None when ``sizes`` and ``flops_cost`` are what the run will train; a method whose
    subsets depend on the losses gives a bound instead (``"at least"`` or ``"at most"``) and
    :func:`describe` says that the real figure is known only after training (log.jsonl).
    """

    method: str
    epochs: int  # epochs this run trains
    ref_epochs: int  # epochs of the full-data baseline it is compared with
    sizes: tuple[int, ...]  # samples trained per epoch (planned, or the bound)
    num_samples: int
    flops_cost: float  # planned training + selection FLOPs relative to the baseline
    bound: str | None = None
    notes: tuple[str, ...] = ()  # extra dry-run lines

    @property
    def relative_cost(self) -> float:
        return sum(self.sizes) / (self.ref_epochs * self.num_samples)


def describe(plan: Plan) -> list[str]:
    """Dry-run lines: per-epoch trained fraction (runs of equal epochs merged) and the total cost."""
    bound = f"{plan.bound} " if plan.bound else ""
    lines, start = [], 1
    for e in range(1, plan.epochs + 1):
        if e == plan.epochs or plan.sizes[e] != plan.sizes[e - 1]:
            span = f"{start}" if start == e else f"{start}-{e}"
            lines.append(f"  epochs {span:>9}: {bound}{100 * plan.sizes[e - 1] / plan.num_samples:6.2f}% of the data")
            start = e + 1
    lines.append(f"relative cost (samples): {100 * plan.relative_cost:.1f}% of uniform training for "
                 f"{plan.ref_epochs} epochs" + (f" ({plan.bound})" if plan.bound else ""))
    lines.append(f"relative cost (FLOPs):   {100 * plan.flops_cost:.1f}%" + (f" ({plan.bound})" if plan.bound else ""))
    if plan.bound:
        lines.append("the subsets depend on the training losses: the real figures are known only after training "
                     "(log.jsonl: trained_samples, kept_fraction per epoch; the summary's relative costs)")
    lines.extend(plan.notes)
    return lines


@dataclass(frozen=True)
class StepInfo:
    """Where a step is: ``global_step`` counts optimizer updates from 0, ``step_in_epoch`` from 0."""

    epoch: int
    step_in_epoch: int
    steps_in_epoch: int
    global_step: int


@dataclass
class Batch:
    """One step's samples: images/targets on the device, dataset indices on the CPU (int64).

    ``weights`` (on the device, one per sample) makes the training loss ``mean(weights * losses)``;
    ``None`` trains on the plain mean.
    """

    images: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor
    weights: torch.Tensor | None = None

    def take(self, positions: torch.Tensor) -> Batch:
        """The samples at ``positions`` (CPU int64 positions into this batch), weights included."""
        on_device = positions.to(self.images.device)
        return Batch(self.images[on_device], self.targets[on_device.to(self.targets.device)], self.indices[positions],
                     None if self.weights is None else self.weights[on_device.to(self.weights.device)])


@dataclass(frozen=True)
class StepRecord:
    """What one training forward saw, handed to :meth:`SelectionMethod.record` after the update.

    ``losses`` are the per-sample, unweighted training losses (float32, detached, on the device) and
    ``logits`` the float32 outputs of the same forward (detached): correctness is
    ``logits.argmax(1) == targets``, confidence ``logits.softmax(1).amax(1)``. ``indices`` are the
    dataset indices (CPU int64) in batch order; under DDP each rank records its own share -- gather
    with ``pretrain.selection.distributed.gather_records`` (int64 indices whatever the loss dtype).
    """

    indices: torch.Tensor
    losses: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor
    step: StepInfo


@dataclass(frozen=True)
class EpochTotals:
    """One epoch's counts, summed over all ranks (handed to :meth:`SelectionMethod.epoch_stats`)."""

    trained: int  # per-sample losses trained (a padded shard's repeated samples included)
    steps: int  # optimizer updates this epoch (per rank)
    forwards: Mapping[int, int]  # samples forwarded without training, by input resolution


@dataclass(frozen=True)
class EpochStats:
    """What an epoch trained, as log.jsonl reports it: ``trained_samples`` and ``kept_fraction``."""

    trained_samples: int
    kept_fraction: float


@dataclass
class EpochResult:
    """What :meth:`SelectionMethod.end_epoch` hands back to the trainer's hooks.

    ``dump``: arrays written (rank 0) to ``selection/epoch_XXX.npz``; None writes nothing.
    ``log``: extra fields appended to the epoch's log.jsonl line (JSON-serialisable).
    """

    dump: dict[str, np.ndarray] | None = None
    log: dict[str, Any] = field(default_factory=dict)


class TrainerServices(Protocol):
    """What the trainer offers a method (handed over in :meth:`SelectionMethod.setup`)."""

    model: nn.Module  # the plain module (DDP-unwrapped): score with it, never through DDP
    device: torch.device
    world_size: int
    rank: int

    def count_forwards(self, resolution: int, samples: int) -> None:
        """Count ``samples`` forwards at ``resolution`` px done outside training (scoring) for the cost."""

    def forward_samples(self, indices: torch.Tensor, *, batch_stats: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample losses and logits of dataset ``indices`` under the current weights (collective).

        Every rank passes the same indices; each forwards its share (the training transform of the
        current epoch, no gradient, every model state restored bit-exactly; ``batch_stats`` normalises
        with batch statistics instead of BatchNorm's running ones) and every rank gets all results, in
        the order of ``indices``, as CPU float32. The forwards are counted in the cost.
        """


# -- parameters -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodParams:
    """Base of a method's parameters: a frozen dataclass whose fields are its config keys, with defaults.

    One dataclass per method: when the pure rule in ``pretrain/selection/`` has its own parameters
    dataclass (``InfoBatchParams``, ``KakurenboParams``, ...), that class is the method's ``Params``
    itself (any frozen dataclass with ``validate(run)`` will do); this base is for methods without one.
    :func:`build_method` builds either through ``pretrain.sections.build_section``: unknown keys are
    rejected (with a "did you mean"); :meth:`validate` raises ``ValueError`` or :class:`ConfigError` with
    one line naming the key.
    """

    @classmethod
    def from_config(cls, values: Mapping[str, Any], where: str, run: RunInfo | None = None) -> MethodParams:
        """The checked parameters (``pretrain.sections.build_section``, ``run`` passed to :meth:`validate`)."""
        return build_section(cls, {k: _plain(v) for k, v in values.items()}, where, run)

    def validate(self, run: RunInfo | None) -> None:
        """Raise ``ValueError`` with one line naming the first bad key (``run`` is None when unknown)."""


@dataclass(frozen=True)
class NoParams(MethodParams):
    """A method without parameters."""


def _fraction(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1


@dataclass(frozen=True)
class BudgetParams(MethodParams):
    """A share of the data per epoch: ``budget=<fraction>`` (every epoch) or ``fractions=[<one per epoch>]``
    (``bench/accuracy.py`` passes a loss-driven run's achieved per-epoch shares). The random controls'
    parameters; ``method_name`` and ``label`` (the paper's name, or empty) go into the error lines."""

    budget: float | None = None
    fractions: tuple[float, ...] | None = None
    method_name: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def validate(self, run: RunInfo | None) -> None:
        note = f" ({self.label})" if self.label else ""
        if (self.budget is None) == (self.fractions is None):
            raise ConfigError(f"{self.method_name} needs exactly one of method.budget=<fraction of the data per epoch> "
                              "or method.fractions=[<one fraction per epoch>]")
        if self.budget is not None and not _fraction(self.budget):
            raise ConfigError(f"method.budget{note} must be a fraction in (0, 1], got {self.budget!r}")
        if self.fractions is not None:
            bad = [f for f in self.fractions if not _fraction(f)]
            if bad:
                raise ConfigError(f"method.fractions{note} must be fractions in (0, 1], got {bad[0]!r}")
            if run is not None and len(self.fractions) != run.epochs:
                raise ConfigError(f"method.fractions{note} needs one fraction per epoch ({run.epochs}), "
                                  f"got {len(self.fractions)}")

    def fraction(self, epoch: int) -> float:
        """The share of epoch ``epoch`` (1-based)."""
        return float(self.budget) if self.budget is not None else float(self.fractions[epoch - 1])

    def per_epoch(self, epochs: int) -> list[float]:
        return [self.fraction(e) for e in range(1, epochs + 1)]


def _plain(value: Any) -> Any:
    """Config values as plain Python: mmengine ConfigDict -> dict, lists -> tuples (hashable, frozen)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


# -- the protocol -----------------------------------------------------------------------------------
class SelectionMethod:
    """A selection method: every hook has a do-nothing default; override the ones the method needs.

    ``name`` is set by :func:`register_method`; the class docstring's first line is the description
    ``tools/train.py --list-methods`` prints. The constructor gets the validated params and the
    :class:`RunInfo` and must be cheap (no data, no model: ``--dry-run`` builds it for N = 1.28M).
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams  # a frozen dataclass of the config keys with ``validate(run)``
    # True when the method's state crosses ranks: records gathered from every rank (a loss table), or
    # per-rank state (generators, pools). Such a method gets 2-rank kill/resume coverage in CI
    # (tests/test_reliability/test_interrupt.py); the others run there under ``-m extended``.
    has_cross_rank_state: ClassVar[bool] = False

    def __init__(self, params: Any, run: RunInfo) -> None:
        self.params, self.run = params, run
        self.services: TrainerServices | None = None

    @classmethod
    def description(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    # -- planning -----------------------------------------------------------------------------------
    def plan(self) -> Plan:
        """The dry-run plan; the default trains every sample every epoch (FLOPs = trained samples)."""
        return self.subset_plan([self.run.num_samples] * self.run.epochs)

    def subset_plan(self, sizes: list[int], epochs: int | None = None, **kwargs: Any) -> Plan:
        """A plan without scoring passes: FLOPs scale with the trained samples."""
        ref, n = self.run.epochs, self.run.num_samples
        return Plan(self.name, len(sizes) if epochs is None else epochs, ref, tuple(sizes), n,
                    sum(sizes) / (ref * n), **kwargs)

    # -- building -----------------------------------------------------------------------------------
    def build_feed(self, dataset: Any, workers: int) -> Feed:
        """The batches this method trains on (``pretrain.feed``: a subset sampler per epoch, or pools)."""
        raise NotImplementedError

    def setup(self, services: TrainerServices) -> None:
        """Called once the model exists (before any resume state is loaded)."""
        self.services = services

    # -- each epoch and step ------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        """Before epoch ``epoch``'s first step, and again when a run resumes inside it (idempotent)."""

    def lr_factor(self, epoch: int) -> float:
        """A factor on every learning rate of epoch ``epoch`` (applied after the schedule's value)."""
        return 1.0

    def select(self, batch: Batch, step: StepInfo) -> Batch:
        """The samples of a loaded batch to train on, and their loss weights (default: all, unweighted)."""
        return batch

    def train_batch_sizes(self) -> tuple[int, ...]:
        """The per-rank batch sizes :meth:`select` hands to training, one per shape (default: the full batch).

        With ``runtime.pad_batches`` (on with ``runtime.compile``) the trainer pads every trained batch up
        to the nearest of these sizes with weight-0 copies, so each is one compiled graph; the full batch
        is padded to b + 1, which also holds a last batch the feed folded a single sample into. A method
        that trains smaller batches (a kept share) declares their size, so they train at it, not at b + 1.
        """
        return (self.run.batch_size,)

    def record(self, record: StepRecord) -> None:
        """Per-sample losses and logits of a trained batch (every step, after the update)."""

    # -- end of an epoch ----------------------------------------------------------------------------
    def epoch_stats(self, epoch: int, totals: EpochTotals) -> EpochStats:
        """What epoch ``epoch`` trained; called before :meth:`end_epoch`."""
        return EpochStats(totals.trained, totals.trained / self.run.num_samples)

    def end_epoch(self, epoch: int) -> EpochResult:
        """The end-of-epoch rule (collective: every rank calls it); what to dump and log."""
        return EpochResult()

    # -- checkpoint ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """State shared by all ranks (collective; saved once)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def rank_state_dict(self) -> dict[str, Any]:
        """This rank's own state (saved for every rank)."""
        return {}

    def load_rank_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class SubsetMethod(SelectionMethod):
    """A method that trains one pass over a subset sampler per epoch (``pretrain.selection.samplers``).

    Subclasses build their sampler in :meth:`make_sampler`; the sampler's ``record`` gets the losses,
    its ``end_epoch`` applies the rule, its state is checkpointed, and after every epoch all ranks are
    checked to hold the same subset.
    """

    sampler: SubsetSampler

    def make_sampler(self) -> SubsetSampler:
        """This method's sampler (default: every sample every epoch, reshuffled)."""
        return UniformSampler(self.run.num_samples, **self.sampler_kwargs())

    def sampler_kwargs(self) -> dict[str, Any]:
        return {"seed": self.run.seed, "num_replicas": self.run.world_size, "rank": self.run.rank}

    def build_feed(self, dataset: Any, workers: int) -> Feed:
        self.sampler = self.make_sampler()
        return SamplerFeed(dataset, self.sampler, self.run.batch_size, workers, self.run.seed)

    def record(self, record: StepRecord) -> None:
        self.sampler.record(record.indices, record.losses)

    def epoch_stats(self, epoch: int, totals: EpochTotals) -> EpochStats:
        size = self.sampler.subset_size
        return EpochStats(size, size / self.run.num_samples)

    def end_epoch(self, epoch: int) -> EpochResult:
        result = self.sampler.end_epoch(epoch)
        same_on_all_ranks(self.sampler.subset, f"the subset after epoch {epoch}")
        return self.epoch_result(result)

    def epoch_result(self, sampler_result: dict[str, Any]) -> EpochResult:
        """The hooks' view of the sampler's end-of-epoch result (default: nothing to dump)."""
        return EpochResult()

    def state_dict(self) -> dict[str, Any]:  # collective for loss-driven samplers (syncs the loss table)
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])


# -- the registry -----------------------------------------------------------------------------------
METHODS: dict[str, type[SelectionMethod]] = {}


def register_method(name: str) -> Callable[[type[SelectionMethod]], type[SelectionMethod]]:
    """Register a :class:`SelectionMethod` subclass as ``method.type=name``; a duplicate name raises."""

    def wrap(cls: type[SelectionMethod]) -> type[SelectionMethod]:
        if name in METHODS:
            raise KeyError(f"selection method {name!r} is already registered "
                           f"({METHODS[name].__module__}.{METHODS[name].__qualname__})")
        if not (isinstance(cls, type) and issubclass(cls, SelectionMethod)):
            raise TypeError(f"@register_method({name!r}) needs a SelectionMethod subclass, got {cls!r}")
        if not cls.description():
            raise TypeError(f"selection method {name!r} needs a docstring (its first line is its description)")
        cls.name = name
        METHODS[name] = cls
        return cls

    return wrap


_loaded = False


def load_all() -> None:
    """Import every method module of this package once (their decorators fill ``METHODS``)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = __name__.rpartition(".")[0]
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda m: m.name):
        if info.name != "base":
            importlib.import_module(f"{package}.{info.name}")


def method_class(name: Any) -> type[SelectionMethod]:
    """The registered class of ``method.type=name``; an unknown name is a one-line :class:`ConfigError`."""
    load_all()
    if name not in METHODS:
        import difflib

        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"method.type must be one of {', '.join(METHODS)}, got {name!r}{hint}")
    return METHODS[name]


def build_method(method: Mapping[str, Any], run: RunInfo) -> SelectionMethod:
    """The method of a config's ``method=dict(type=..., **params)``, its params checked against ``run``."""
    if isinstance(run.epochs, bool) or not isinstance(run.epochs, int) or run.epochs < 1:
        raise ConfigError(f"schedule.epochs must be a positive integer, got {run.epochs!r}")
    cls = method_class(method.get("type"))
    values = {k: v for k, v in method.items() if k != "type"}
    return cls(build_section(cls.Params, {k: _plain(v) for k, v in values.items()}, f"method {cls.name!r}", run), run)
