"""Everything about a pipeline that can be checked before the first long stage, each failure one line.

Unknown method, task or backbone; config files that are missing or do not load; a transfer config whose
backbone is not the one pre-trained; stage inputs that are missing (data roots, outputs of stages marked
done); a report folder that is not writable or holds results of other settings.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from mmengine.config import Config

from transfer.tasks import TASKS, task_of

from .axes import RESNET_TYPES, axis_options
from .spec import PipelineError, PipelineSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def load_config(path: str, what: str, options: dict[str, Any] | None = None) -> Config:
    if not Path(path).is_file():
        raise PipelineError(f"{what}: config file not found: {path}")
    try:
        cfg = Config.fromfile(path)
    except Exception as e:  # noqa: BLE001 - a config that does not load is one line
        raise PipelineError(f"{what}: cannot load {path}: {type(e).__name__}: {str(e).splitlines()[0][:150]}") from None
    if options:
        cfg.merge_from_dict(dict(options))
    return cfg


def check_shape(spec: PipelineSpec) -> None:
    """Names, tasks and seeds make sense on their own."""
    if not spec.methods:
        raise PipelineError("the pipeline has no pre-training methods")
    if not spec.seeds:
        raise PipelineError("the pipeline has no seeds")
    names = [m.name for m in spec.methods]
    for n in names:
        if not _NAME.match(n):
            raise PipelineError(f"method name {n!r} is not a plain folder name (letters, digits, _ . -)")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise PipelineError(f"method name {sorted(dup)[0]!r} appears twice")
    for t in spec.tasks:
        if t.task not in TASKS:
            raise PipelineError(f"unknown task {t.task!r}; expected one of {', '.join(TASKS)}")
        if not _NAME.match(t.name):
            raise PipelineError(f"task name {t.name!r} is not a plain folder name (letters, digits, _ . -)")
    entries = [t.name for t in spec.tasks]
    if len(set(entries)) != len(entries):
        twice = next(n for n in entries if entries.count(n) > 1)
        raise PipelineError(f"task {twice!r} appears twice; give one of them its own name=")
    extra = [s for s in spec.transfer_seeds if s not in spec.seeds]
    if extra:
        raise PipelineError(f"transfer seed {extra[0]} is not among the pre-training seeds {list(spec.seeds)}")


def check_writable(folder: Path) -> None:
    """The folder, or the nearest existing folder above it, accepts new files (nothing is created here)."""
    folder = Path(folder).absolute()
    probe_dir = next((p for p in (folder, *folder.parents) if p.exists()), None)
    problem = None
    if probe_dir is None or not probe_dir.is_dir():
        problem = f"{probe_dir} is not a folder"
    elif not os.access(probe_dir, os.W_OK | os.X_OK):
        problem = f"no write permission in {probe_dir}"
    else:  # os.access says yes to root everywhere, and /proc, /sys or a read-only mount refuse anyway
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".write-probe-", dir=probe_dir))
        except OSError as e:
            problem = f"cannot create a folder in {probe_dir}: {e.strerror}"
    if problem:
        raise PipelineError(f"report folder {folder} is not writable ({problem})")


def pretrain_arch(spec: PipelineSpec) -> dict[str, str]:
    """Check each method's pre-training config; return method name -> timm arch it trains."""
    from pretrain.methods import METHODS, load_all
    from pretrain.models import ModelError, resolve_arch

    load_all()  # the registry of selection methods
    archs = {}
    for m in spec.methods:
        cfg = load_config(m.config, f"method {m.name!r}", spec.pretrain_options(m, spec.seeds[0]))
        if "default_scope" in cfg:
            raise PipelineError(f"method {m.name!r}: {m.config} is a transfer config, not a pre-training one")
        kind = (cfg.get("method") or {}).get("type")
        if kind not in METHODS:
            raise PipelineError(f"method {m.name!r}: unknown pre-training method {kind!r} in {m.config}; "
                                f"expected one of {', '.join(METHODS)}")
        arch = (cfg.get("model") or {}).get("arch")
        try:
            archs[m.name] = resolve_arch(str(arch))
        except ModelError as e:
            raise PipelineError(f"method {m.name!r}: {e}") from None
    return archs


def transfer_arch(cfg: Config) -> str | None:
    """The timm arch a transfer config's backbone takes weights of, or None when it cannot tell."""
    bb = cfg.get("model", {}).get("backbone", {})
    if bb.get("type") in RESNET_TYPES and bb.get("depth"):
        return f"resnet{bb['depth']}"
    if bb.get("type") == "TimmFeatureBackbone":
        return bb.get("model_name")
    return None


def check_tasks(spec: PipelineSpec, archs: dict[str, str]) -> None:
    for t in spec.tasks:
        cfg = load_config(t.config, f"task {t.name!r}", {**spec.transfer_cfg_options, **t.cfg_options})
        scope, want_scope = cfg.get("default_scope"), TASKS[t.task].scope
        if scope != want_scope:
            raise PipelineError(f"task {t.name!r}: {t.config} has scope {scope!r}, expected {want_scope!r}")
        if task_of(cfg) != t.task:  # what its metrics.json will say, hence the table it lands in
            raise PipelineError(f"task {t.name!r}: {t.config} is a {task_of(cfg)!r} config, not {t.task!r}")
        want = transfer_arch(cfg)
        for name, arch in archs.items():
            if want is not None and want != arch:
                raise PipelineError(f"task {t.name!r}: {t.config} takes a {want} backbone but method {name!r} "
                                    f"pre-trains {arch}")
        root = spec.data_root(t.name) or cfg.get("data_root")
        if root and not Path(root).exists() and not generated(spec, root):
            how = (f" (data_roots.{t.data}: set it with --cfg-options data_roots.{t.data}=PATH)" if t.data
                   else f" (the data_root of {t.config})")
            raise PipelineError(f"task {t.name!r}: missing stage input: data root {root} does not exist{how}")


def generated(spec: PipelineSpec, root: str) -> bool:
    """Whether ``root`` lies in the tiny data that the pipeline generates before the first transfer stage."""
    if not spec.tiny_data:
        return False
    tiny = Path(spec.tiny_data["root"]).resolve()
    return Path(root).resolve() == tiny or tiny in Path(root).resolve().parents


def check_data(spec: PipelineSpec) -> None:
    if spec.pretrain_data:
        root = spec.data_roots[spec.pretrain_data]
        if not Path(root).exists() and not generated(spec, root):
            raise PipelineError(f"missing stage input: pre-training data root {root} does not exist (set it with "
                                f"--cfg-options data_roots.{spec.pretrain_data}=PATH)")
    if not spec.tiny_data:
        return
    root = Path(spec.tiny_data["root"])
    if root.exists() and not (root / "meta.json").is_file():
        raise PipelineError(f"tiny data root {root} exists but holds no meta.json from tools/make_tiny_data.py")
    if not root.exists():
        check_writable(root.parent)


def validate(spec: PipelineSpec) -> dict[str, str]:
    """Run every check; return method name -> timm arch. Raises PipelineError with one line."""
    check_shape(spec)
    check_writable(spec.report_dir)
    archs = pretrain_arch(spec)
    check_tasks(spec, archs)
    for entry in spec.tasks:  # curve points, data fraction, frozen: they fit the recipe
        axis_options(spec, entry)
    check_data(spec)
    return archs
