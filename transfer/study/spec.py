"""The pipeline config, resolved: methods x seeds to pre-train, tasks to fine-tune, options, report folder.

A pipeline config is an mmengine python config (see ``configs/pipeline/demo.py``) with

- ``report_dir``; ``methods``: ``dict(name, config, cfg_options={})`` per pre-training config;
  ``tasks``: ``dict(name=task, task, config, cfg_options={}, data=None)`` per transfer config (task: a key of
  :data:`transfer.tasks.TASKS`; ``name``, by default the task, names its stages, folders and table rows, so
  that two recipes of one task, e.g. ``dict(name='retinanet', task='det', ...)`` beside ``dict(task='det',
  ...)``, run side by side);
- ``seeds`` (pre-training), ``transfer_seeds`` and ``transfer_methods`` (which runs are fine-tuned; each
  fine-tuning runs with its pre-training run's seed); ``scratch=True``: every entry is also fine-tuned from
  a randomly initialised backbone, once per transfer seed (the tables' ``scratch`` row);
- ``arch`` (backbone of every method), ``pretrain_cfg_options`` / ``transfer_cfg_options`` (all runs);
- ``data_roots`` (name -> folder; paths are options: ``--cfg-options data_roots.coco=/datasets/coco``),
  ``pretrain_data`` (the name whose folder becomes ``data.root`` of every pre-training run), a task's
  ``data`` (the name whose folder is passed as ``--data-root``; default coco / cityscapes by task when
  ``data_roots`` has them), ``tiny_data=dict(root, args)`` (generated with tools/make_tiny_data.py when
  missing);
- ``launch`` (see :mod:`.launch`) and ``quick``: a dict merged over the config by ``--quick``;
- the transfer axes (docs/pipeline.md, "Transfer axes"), per entry or, as defaults, at the top level:
  ``curve_points=K`` (validate at K evenly spaced points of the schedule: the fine-tuning curve),
  ``data_fraction=[0.1, 1.0]`` (an entry per fraction: a seeded subset of the training images, the same
  for every method and seed; ``subset_seed`` picks it) with ``fraction_schedule`` ``'iterations'`` (default:
  the same optimisation steps on fewer images) or ``'scaled'`` (the schedule shrinks with the data), and
  ``frozen=True`` (every backbone stage frozen, BN in eval mode: the "frozen" protocol rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmengine.config import Config

from transfer.tasks import TASKS

from .errors import PipelineError
from .launch import Launch
from .results import SCRATCH


@dataclass(frozen=True)
class MethodSpec:
    name: str  # folder and label of this entry (e.g. "dar86")
    config: str  # pre-training config
    cfg_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransferSpec:
    name: str  # folder, stage and table-row name of this entry (default: the task)
    task: str  # a key of transfer.tasks.TASKS
    config: str  # transfer config
    cfg_options: dict[str, Any] = field(default_factory=dict)
    data: str | None = None  # key of data_roots passed as --data-root
    curve_points: int | None = None  # validations at K evenly spaced points of the schedule (None: as the config)
    data_fraction: float = 1.0  # fine-tune on this fraction of the training images (a seeded subset)
    frozen: bool = False  # every backbone stage frozen, BN in eval mode (the "frozen" protocol)
    fraction_schedule: str = "iterations"  # with data_fraction < 1: 'iterations' (kept) or 'scaled' (x fraction)
    family: str = ""  # the config entry's name, shared by its per-fraction entries ('' = name)

    @property
    def entry_name(self) -> str:
        """The name of the config entry this one was expanded from (one per data fraction)."""
        return self.family or self.name


FRACTION_SCHEDULES = ("iterations", "scaled")


@dataclass(frozen=True)
class PipelineSpec:
    """The resolved pipeline config (after --quick, subset options and overrides)."""
    report_dir: Path
    methods: tuple[MethodSpec, ...]
    tasks: tuple[TransferSpec, ...]
    seeds: tuple[int, ...]  # pre-training seeds
    transfer_seeds: tuple[int, ...]  # which pre-training seeds are fine-tuned (a subset of seeds)
    transfer_methods: tuple[str, ...] = ()  # which methods are fine-tuned (empty: all)
    seed_key: str = "seed"  # pre-training config key of the seed
    arch: str | None = None  # backbone for every method (pre-training config key model.arch)
    pretrain_cfg_options: dict[str, Any] = field(default_factory=dict)
    transfer_cfg_options: dict[str, Any] = field(default_factory=dict)
    data_roots: dict[str, str] = field(default_factory=dict)
    pretrain_data: str | None = None
    tiny_data: dict[str, Any] | None = None  # {"root": ..., "args": [...]}: generated when missing
    launch: Launch = field(default_factory=Launch)
    scratch: bool = False  # also fine-tune every entry from a randomly initialised backbone
    subset_seed: int = 0  # picks the training subsets of data_fraction (the same for every method and seed)

    def method(self, name: str) -> MethodSpec:
        return next(m for m in self.methods if m.name == name)

    def entry(self, name: str) -> TransferSpec:
        return next(t for t in self.tasks if t.name == name)

    def pretrain_options(self, method: MethodSpec, seed: int) -> dict[str, Any]:
        """All ``--cfg-options`` of one pre-training run."""
        opts = {**self.pretrain_cfg_options, **method.cfg_options, self.seed_key: seed}
        if self.arch:
            opts["model.arch"] = self.arch
        if self.pretrain_data:
            opts["data.root"] = self.data_roots[self.pretrain_data]
        return opts

    def data_root(self, entry: str) -> str | None:
        name = self.entry(entry).data
        return None if name is None else self.data_roots[name]


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def read_config(path: str | Path, quick: bool, cfg_options: dict[str, Any] | None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"pipeline config not found: {path}")
    try:
        cfg = Config.fromfile(str(path))
    except Exception as e:  # noqa: BLE001 - a config that does not parse is one line
        raise PipelineError(f"cannot read pipeline config {path}: {type(e).__name__}: {e}") from None
    if quick:
        overrides = dict(cfg.get("quick") or {})
        overrides.setdefault("report_dir", str(cfg.get("report_dir", "work_dirs/pipeline")).rstrip("/") + "_quick")
        cfg.merge_from_dict(overrides)  # nested dicts merge, lists are replaced
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    d = cfg.to_dict()
    for key in ("report_dir", "methods", "tasks"):
        if key not in d:
            raise PipelineError(f"pipeline config {path} lacks '{key}'")
    return d


def load_spec(path: str | Path, *, quick: bool = False, methods: str | None = None, tasks: str | None = None,
              seeds: str | None = None, report_dir: str | None = None,
              cfg_options: dict[str, Any] | None = None) -> PipelineSpec:
    """Read a pipeline config; apply ``quick``, ``cfg_options``, then the subsets (comma lists)."""
    d = read_config(path, quick, cfg_options)
    data_roots = {k: str(v) for k, v in (d.get("data_roots") or {}).items()}
    m_specs = [MethodSpec(m["name"], m["config"], _options(m.get("cfg_options"), f"methods[{i}].cfg_options"))
               for i, m in enumerate(_entries(d, "methods", "name"))]
    t_specs = [TransferSpec(str(t.get("name", t["task"])), t["task"], t["config"],
                            _options(t.get("cfg_options"), f"tasks[{i}].cfg_options"), _task_data(t, data_roots),
                            **_axes(t, d, f"tasks[{i}]"))
               for i, t in enumerate(_entries(d, "tasks", "task"))]
    subset_seed = d.get("subset_seed", 0)
    if not isinstance(subset_seed, int) or isinstance(subset_seed, bool):
        raise PipelineError(f"subset_seed must be an integer, got {subset_seed!r}")
    for t in t_specs:
        if t.data is not None and t.data not in data_roots:
            raise PipelineError(f"task {t.name!r}: data {t.data!r} is not a key of data_roots {sorted(data_roots)}")
    if d.get("pretrain_data") is not None and d["pretrain_data"] not in data_roots:
        raise PipelineError(f"pretrain_data {d['pretrain_data']!r} is not a key of data_roots {sorted(data_roots)}")
    all_names = [m.name for m in m_specs]
    if SCRATCH in all_names:
        raise PipelineError(f"method name {SCRATCH!r} is reserved for the fine-tuning from a randomly initialised "
                            "backbone (scratch=True); name the pre-training method otherwise")
    tmethods = d.get("transfer_methods")
    unknown = [n for n in tmethods or [] if n not in all_names]
    if unknown:
        raise PipelineError(f"transfer_methods names {unknown[0]!r}, which is not among the methods")
    m_specs = _subset(m_specs, _csv(methods), "method", lambda m: m.name)
    t_specs = _subset(t_specs, _csv(tasks), "task", lambda t: t.name, lambda t: t.task)
    t_specs = [f for t in t_specs for f in _per_fraction(t)]
    names = [m.name for m in m_specs]
    # a method subset on the command line is fine-tuned as asked, whatever transfer_methods says
    tmethods = names if methods is not None else [n for n in (tmethods or names) if n in names]
    seed_list = [int(s) for s in d.get("seeds", [0])]
    tseeds = [int(s) for s in d.get("transfer_seeds", seed_list[:1])]
    if seeds is not None:
        seed_list = [int(s) for s in _csv(seeds) or []]
        tseeds = [s for s in tseeds if s in seed_list] or seed_list[:1]
    return PipelineSpec(Path(report_dir or d["report_dir"]), tuple(m_specs), tuple(t_specs), tuple(seed_list),
                        tuple(tseeds), tuple(tmethods), d.get("seed_key", "seed"), d.get("arch"),
                        _options(d.get("pretrain_cfg_options"), "pretrain_cfg_options"),
                        _options(d.get("transfer_cfg_options"), "transfer_cfg_options"), data_roots,
                        d.get("pretrain_data"), d.get("tiny_data"), Launch.from_config(d.get("launch")),
                        bool(d.get("scratch", False)), subset_seed)


def _entries(d: dict[str, Any], key: str, required: str) -> list[dict[str, Any]]:
    """The config's list ``key``, each a dict with ``required`` and ``config``."""
    entries = d[key]
    for i, e in enumerate(entries if isinstance(entries, (list, tuple)) else [entries]):
        missing = [k for k in (required, "config") if not isinstance(e, dict) or k not in e]
        if missing:
            raise PipelineError(f"{key}[{i}] needs a '{missing[0]}' key (dict({required}=..., config=...))")
    return list(entries)


def _axes(t: dict[str, Any], d: dict[str, Any], where: str) -> dict[str, Any]:
    """An entry's transfer axes (its own keys, else the config's top-level defaults), checked: one line each."""
    def get(key: str, default: Any) -> tuple[Any, str]:
        return (t[key], f"{where}.{key}") if key in t else (d.get(key, default), key)

    points, name = get("curve_points", None)
    if points is not None and (not isinstance(points, int) or isinstance(points, bool) or points < 1):
        raise PipelineError(f"{name} must be a positive integer (evaluations along the fine-tuning), got {points!r}")
    frozen, name = get("frozen", False)
    if not isinstance(frozen, bool):
        raise PipelineError(f"{name} must be True or False, got {frozen!r}")
    schedule, name = get("fraction_schedule", "iterations")
    if schedule not in FRACTION_SCHEDULES:
        raise PipelineError(f"{name} must be one of {', '.join(map(repr, FRACTION_SCHEDULES))}, got {schedule!r}")
    fractions, name = get("data_fraction", 1.0)
    values = list(fractions) if isinstance(fractions, (list, tuple)) else [fractions]
    for f in values:
        if not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 < f <= 1:
            raise PipelineError(f"{name} must be fractions in (0, 1] of the training images, got {f!r}")
    if not values or len(set(values)) != len(values):
        raise PipelineError(f"{name} must list distinct fractions, got {fractions!r}")
    return {"curve_points": points, "frozen": frozen, "fraction_schedule": schedule,
            "data_fraction": tuple(float(f) for f in values)}


def fraction_suffix(fraction: float) -> str:
    """The entry-name suffix of a data fraction: 0.1 -> ``_f10`` (percent), 1.0 -> none."""
    return "" if fraction == 1.0 else f"_f{fraction * 100:g}"


def _per_fraction(t: TransferSpec) -> list[TransferSpec]:
    """One entry per data fraction (the full-data one keeps the entry's name; the others get a suffix)."""
    from dataclasses import replace

    fractions = t.data_fraction if isinstance(t.data_fraction, tuple) else (t.data_fraction,)
    return [replace(t, name=t.name + fraction_suffix(f), data_fraction=f, family=t.name) for f in fractions]


def _options(value: Any, where: str) -> dict[str, Any]:
    """A ``cfg_options`` entry: a dict of config overrides (None: none)."""
    if value is None:
        return {}
    if not isinstance(value, dict):  # e.g. ``tasks.0.cfg_options={...}`` on the command line arrives as text
        raise PipelineError(f"{where} must be a dict of config overrides, got {type(value).__name__} {value!r}; "
                            "--cfg-options cannot give a dict: set it in a pipeline config that inherits this one")
    return dict(value)


def _task_data(t: dict[str, Any], data_roots: dict[str, str]) -> str | None:
    """The data_roots key a transfer entry reads: its own ``data``, else its task's dataset if named."""
    if "data" in t:
        return t["data"]
    task = TASKS.get(t["task"])
    return task.data if task is not None and task.data in data_roots else None


def _subset(items: list, wanted: list[str] | None, what: str, name, group=None) -> list:
    """The items named in ``wanted``; a wanted value that names no item selects the items of that
    ``group`` (transfer entries by task: ``--tasks det`` runs every det entry when none is named det)."""
    if wanted is None:
        return items
    known = [name(i) for i in items]
    groups = [] if group is None else [group(i) for i in items]
    unknown = [w for w in wanted if w not in known and w not in groups]
    if unknown:
        raise PipelineError(f"unknown {what} {unknown[0]!r} in the subset option; the config has: {', '.join(known)}")
    return [i for i in items if name(i) in wanted or (group is not None and group(i) in wanted
                                                         and group(i) not in known)]
