"""Checkpoints: atomic writes, the ``last_checkpoint`` pointer, RNG states, and the resume check.

A checkpoint is a dict with ``model`` (timm state dict, DDP-unwrapped), ``meta`` (the shared contract)
and the resume state the trainer puts there (its components' state dicts: optimizer, scaler, scheduler,
method, feed, progress, hooks, per-rank RNG states). Files are written to a temporary name and renamed into place, so a run killed while saving
never leaves a truncated checkpoint behind and ``last_checkpoint`` always names a complete file.
"""
from __future__ import annotations

import datetime as _dt
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

# The work-dir contract lives in dar_common.workdir; these names stay importable from here.
from dar_common.workdir import atomic_save, atomic_write_text, write_last_checkpoint  # noqa: F401
from dar_common.workdir import latest_checkpoint as find_last  # noqa: F401

# Config keys that may change between a checkpoint and its resume: where things are and how fast they
# run, not what is trained.
RESUMABLE_CHANGES = ("work_dir", "runtime", "data.root", "data.num_workers", "data.verify")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed here; the message is one line."""


def save_checkpoint(state: dict, work_dir: str | Path, name: str) -> Path:
    """Write ``work_dir/name`` atomically and point ``last_checkpoint`` at it."""
    path = atomic_save(state, Path(work_dir) / name)
    write_last_checkpoint(work_dir, path)
    return path


def rng_state() -> dict:
    """Python, NumPy, torch CPU and (if present) CUDA RNG states of this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def config_diff(old: dict, new: dict, allowed: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """``key: old vs new`` for every config value that differs, ignoring the ``allowed`` prefixes."""
    a, b = _flatten(old), _flatten(new)
    diff = []
    for key in sorted(set(a) | set(b)):
        if any(key == p or key.startswith(p + ".") for p in allowed):
            continue
        if a.get(key) != b.get(key):
            diff.append(f"{key}: {a.get(key, '<unset>')!r} vs {b.get(key, '<unset>')!r}")
    return diff


def load_for_resume(path: str | Path, config: dict, world_size: int) -> dict:
    """Load a checkpoint and check it was written by this config and method on as many ranks."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"resume checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read resume checkpoint {path} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "progress" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a pre-training checkpoint with resume state")
    diff = config_diff(state["config"], config)
    if state.get("world_size") != world_size:
        diff.append(f"world size: {state.get('world_size')} vs {world_size}")
    if diff:
        raise CheckpointError(f"resume checkpoint {path} is from another config or method "
                              f"(checkpoint vs now): {'; '.join(diff)}")
    return state


def make_meta(config: dict, summary: dict, git_rev: str) -> dict:
    """The ``meta`` block of checkpoints and ``backbone.pth`` (shared contract)."""
    method = dict(config["method"])
    return {
        "arch": config["model"]["arch"],
        "method": method.pop("type"),
        "method_params": method,
        "epochs": summary.get("epochs"),
        "dataset": config["data"].get("type"),
        "relative_cost_samples": summary.get("relative_cost_samples"),
        "relative_cost_flops": summary.get("relative_cost_flops"),
        "top1": summary.get("top1"),
        "top5": summary.get("top5"),
        "git_rev": git_rev,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def save_backbone(model_state: dict, meta: dict, work_dir: str | Path) -> Path:
    """``backbone.pth``: timm-named weights (classifier included) + meta -- what transfer loads."""
    return atomic_save({"state_dict": model_state, "meta": meta}, Path(work_dir) / "backbone.pth")
