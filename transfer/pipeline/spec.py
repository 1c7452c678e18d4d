"""The pipeline config, resolved: methods x seeds to pre-train, tasks to fine-tune, options, report folder.

A pipeline config is an mmengine python config (see ``configs/pipeline/demo.py``) with ``report_dir``,
``methods`` (each ``dict(name, config, cfg_options)`` naming a pre-training config), ``tasks`` (each
``dict(task, config, cfg_options)`` naming a transfer config), ``seeds``, ``transfer_seeds``, shared
``pretrain_cfg_options`` / ``transfer_cfg_options``, optional ``arch``, ``tiny_data`` and ``quick``
(overrides applied by ``--quick``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmengine.config import Config

from .errors import PipelineError
from .launch import Launch

TASK_SCOPES = {"det": "mmdet", "ins": "mmdet", "pose": "mmpose", "seg": "mmseg"}




@dataclass(frozen=True)
class MethodSpec:
    name: str  # folder and label of this entry (e.g. "dar86")
    config: str  # pre-training config
    cfg_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    task: str  # det | ins | pose | seg
    config: str  # transfer config
    cfg_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineSpec:
    """The resolved pipeline config (after --quick, subset options and overrides)."""
    report_dir: Path
    methods: tuple[MethodSpec, ...]
    tasks: tuple[TaskSpec, ...]
    seeds: tuple[int, ...]  # pre-training seeds
    transfer_seeds: tuple[int, ...]  # which pre-training seeds are fine-tuned (a subset of seeds)
    transfer_methods: tuple[str, ...] = ()  # which methods are fine-tuned (empty: all)
    seed_key: str = "seed"  # pre-training config key of the seed
    arch: str | None = None  # backbone for every method (pre-training config key model.arch)
    pretrain_cfg_options: dict[str, Any] = field(default_factory=dict)
    transfer_cfg_options: dict[str, Any] = field(default_factory=dict)
    tiny_data: dict[str, Any] | None = None  # {"root": ..., "args": [...]}: generated when missing
    launch: Launch = field(default_factory=Launch)

    def method(self, name: str) -> MethodSpec:
        return next(m for m in self.methods if m.name == name)

    def task(self, name: str) -> TaskSpec:
        return next(t for t in self.tasks if t.task == name)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def load_spec(path: str | Path, *, quick: bool = False, methods: str | None = None, tasks: str | None = None,
              seeds: str | None = None, report_dir: str | None = None,
              cfg_options: dict[str, Any] | None = None) -> PipelineSpec:
    """Read a pipeline config; apply ``quick`` overrides, subsets (comma lists) and ``cfg_options``."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"pipeline config not found: {path}")
    try:
        cfg = Config.fromfile(str(path))
    except Exception as e:  # noqa: BLE001 - a config that does not parse is one line
        raise PipelineError(f"cannot read pipeline config {path}: {type(e).__name__}: {e}") from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    d = cfg.to_dict()
    for key in ("report_dir", "methods", "tasks"):
        if key not in d:
            raise PipelineError(f"pipeline config {path} lacks '{key}'")
    q = d.get("quick") or {}
    if quick:
        d["report_dir"] = q.get("report_dir", str(d["report_dir"]).rstrip("/") + "_quick")
    pre_opts = {**d.get("pretrain_cfg_options", {}), **(q.get("pretrain_cfg_options", {}) if quick else {})}
    tra_opts = {**d.get("transfer_cfg_options", {}), **(q.get("transfer_cfg_options", {}) if quick else {})}
    seed_list = [int(s) for s in (q.get("seeds") if quick and "seeds" in q else d.get("seeds", [0]))]
    tseeds = [int(s) for s in (q.get("transfer_seeds") if quick and "transfer_seeds" in q
                               else d.get("transfer_seeds", seed_list[:1]))]
    m_specs = [MethodSpec(m["name"], m["config"], m.get("cfg_options", {})) for m in d["methods"]]
    t_specs = [TaskSpec(t["task"], t["config"], t.get("cfg_options", {})) for t in d["tasks"]]
    m_specs = _subset(m_specs, _csv(methods), "method", lambda m: m.name)
    t_specs = _subset(t_specs, _csv(tasks), "task", lambda t: t.task)
    if seeds is not None:
        seed_list = [int(s) for s in _csv(seeds) or []]
        tseeds = [s for s in tseeds if s in seed_list] or seed_list[:1]
    tmethods = q.get("transfer_methods") if quick and "transfer_methods" in q else d.get("transfer_methods")
    names = [m.name for m in m_specs]
    unknown = [n for n in tmethods or [] if n not in [m["name"] for m in d["methods"]]]
    if unknown:
        raise PipelineError(f"transfer_methods names {unknown[0]!r}, which is not among the methods")
    # a method subset on the command line wins over the config's transfer_methods
    tmethods = [n for n in (tmethods or names) if n in names] if methods is None else names
    return PipelineSpec(Path(report_dir or d["report_dir"]), tuple(m_specs), tuple(t_specs), tuple(seed_list),
                        tuple(tseeds), tuple(tmethods), d.get("seed_key", "seed"), d.get("arch"), pre_opts,
                        tra_opts, d.get("tiny_data"), Launch.from_config(d.get("launch")))


def _subset(items: list, wanted: list[str] | None, what: str, name) -> list:
    if wanted is None:
        return items
    known = [name(i) for i in items]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise PipelineError(f"unknown {what} {unknown[0]!r} in the subset option; the config has: {', '.join(known)}")
    return [i for i in items if name(i) in wanted]
