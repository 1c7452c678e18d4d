"""Publish a pre-trained backbone: weights + meta only, content-hashed name, OpenMMLab model index.

A published file is ``<OUT>-<sha256[:8]>.pth`` holding ``{"state_dict": timm-named weights, "meta": {...}}``
(the hash is over the file's final bytes, as OpenMMLab's ``publish_model.py`` does), and an entry for it
in a ``metafile.yml`` / ``model-index.yml`` (OpenMMLab schema: Name, Config, Metadata, Results, Weights).
The input may be a pre-training work dir, a full pre-training checkpoint (``"model"``), a ``backbone.pth``
(``"state_dict"``) or an earlier published file.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
import yaml
from timm.models import clean_state_dict

from dar_common.workdir import atomic_write_bytes, atomic_write_text, latest_checkpoint, read_summary

# The meta block of a published model (common contract); the first two are required.
META_KEYS = ("arch", "method", "method_params", "epochs", "dataset", "relative_cost_samples",
             "relative_cost_flops", "top1", "top5", "git_rev", "date")
REQUIRED_META = ("arch", "method")
# Fields of the run summary (log.jsonl) that fill gaps in a checkpoint's meta.
_SUMMARY_KEYS = ("method", "arch", "epochs", "relative_cost_samples", "relative_cost_flops", "top1", "top5")


class PublishError(ValueError):
    """Bad input to publishing; the message is one line naming the problem."""


def resolve_input(path: str | Path) -> Path:
    """A work dir resolves to its ``backbone.pth`` or else the checkpoint named in ``last_checkpoint``."""
    path = Path(path)
    if path.is_dir():
        if (path / "backbone.pth").is_file():
            return path / "backbone.pth"
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            return ckpt
        raise PublishError(f"{path} holds neither backbone.pth nor a last_checkpoint pointing at a file")
    if not path.is_file():
        raise PublishError(f"input checkpoint not found: {path}")
    return path


def split_checkpoint(ckpt: Any, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (timm-named state dict, meta) from any accepted checkpoint layout; drops everything else."""
    if not isinstance(ckpt, dict):
        raise PublishError(f"{source} is not a dict but a {type(ckpt).__name__}")
    if "model" in ckpt and isinstance(ckpt["model"], dict):
        sd, meta = ckpt["model"], ckpt.get("meta") or {}
    elif "state_dict" in ckpt and isinstance(ckpt["state_dict"], dict):
        sd, meta = ckpt["state_dict"], ckpt.get("meta") or {}
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd, meta = ckpt, {}
    else:
        raise PublishError(f"{source} has no 'model' or 'state_dict' and is not a raw state dict "
                           f"(keys: {', '.join(list(map(str, ckpt))[:6])})")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad or not sd:
        raise PublishError(f"{source}: state dict is empty or has non-tensor entries ({bad[:3]})")
    sd = {k: v.detach().cpu().contiguous() for k, v in clean_state_dict(sd).items()}
    return sd, dict(meta)


def build_meta(meta: dict[str, Any], summary: dict[str, Any], source: str,
               fallback_date: str | None = None) -> dict[str, Any]:
    """Meta of the published file: the checkpoint's meta, gaps filled from the run summary."""
    out = {k: meta.get(k) for k in META_KEYS}
    out.update({k: v for k, v in meta.items() if k not in out})  # keep extra fields (e.g. seed)
    for k in _SUMMARY_KEYS:
        if out.get(k) is None and summary.get(k) is not None:
            out[k] = summary[k]
    missing = [k for k in REQUIRED_META if not out.get(k)]
    if missing:
        raise PublishError(f"{source}: meta lacks {', '.join(missing)} (not in the checkpoint nor in log.jsonl)")
    if out.get("date") is None:  # the source's date keeps re-publishing the same file byte-identical
        out["date"] = fallback_date or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return out


def serialize(obj: Any) -> bytes:
    """torch.save into memory: the bytes (hence the hash) do not depend on the output file name."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_published(data: bytes, out: str | Path) -> Path:
    """Write ``<out>-<sha256[:8]>.pth`` atomically (temp file, then rename) and return its path."""
    out = Path(out)
    stem = out.name[:-4] if out.name.endswith(".pth") else out.name
    final = out.parent / f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    final.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(final, data)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def metafile_entry(name: str, meta: dict[str, Any], config: str | None, weights: str) -> dict[str, Any]:
    """One model entry in the OpenMMLab metafile schema."""
    metadata = {
        "Architecture": meta.get("arch"),
        "Method": meta.get("method"),
        "Method Parameters": meta.get("method_params"),
        "Epochs": meta.get("epochs"),
        "Training Data": meta.get("dataset"),
        "Relative Cost (samples)": meta.get("relative_cost_samples"),
        "Relative Cost (FLOPs)": meta.get("relative_cost_flops"),
        "Git Revision": meta.get("git_rev"),
        "Date": meta.get("date"),
    }
    metrics = {k: meta[m] for k, m in (("Top 1 Accuracy", "top1"), ("Top 5 Accuracy", "top5"))
               if meta.get(m) is not None}
    return {
        "Name": name,
        "Config": config,
        "Metadata": {k: v for k, v in metadata.items() if v is not None},
        "Results": [{"Task": "Image Classification", "Dataset": meta.get("dataset"), "Metrics": metrics}],
        "Weights": weights,
    }


def update_index(index: str | Path, entry: dict[str, Any]) -> None:
    """Append ``entry`` to the index's ``Models`` list, replacing an entry of the same Name; atomic write."""
    index = Path(index)
    doc: dict[str, Any] = {}
    if index.is_file():
        doc = yaml.safe_load(index.read_text()) or {}
        if not isinstance(doc, dict) or not isinstance(doc.get("Models", []), list):
            raise PublishError(f"{index} is not an OpenMMLab model index (no 'Models' list)")
    models = [m for m in doc.get("Models", []) if m.get("Name") != entry["Name"]]
    doc["Models"] = models + [entry]
    index.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(index, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def _rel(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:  # other drive (Windows)
        return str(path)


def publish(src: str | Path, out: str | Path, *, index: str | Path | None = None, name: str | None = None,
            config: str | None = None, weights_url: str | None = None,
            extra_meta: dict[str, Any] | None = None, transform: Any = None) -> Path:
    """Publish ``src`` as ``<out>-<hash>.pth``; update ``index`` (default ``<out dir>/metafile.yml``).

    ``weights_url`` is a base URL for the index's Weights field (default: path relative to the index).
    Returns the published file's path.
    """
    path = resolve_input(src)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one clear line
        raise PublishError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    sd, meta = split_checkpoint(ckpt, str(path))
    if transform is not None:  # (state dict, meta, checkpoint, path) -> (state dict, meta): BN recalibration
        sd, meta = transform(sd, meta, ckpt, path)
    mtime = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
    meta = build_meta({**meta, **(extra_meta or {})}, read_summary(path.parent) or {}, str(path), mtime)
    stem = Path(out).name[:-4] if str(out).endswith(".pth") else Path(out).name
    name = name or stem
    meta["published_name"] = name
    final = write_published(serialize({"state_dict": sd, "meta": meta}), out)
    index = Path(index) if index else final.parent / "metafile.yml"
    if config is None and (path.parent / "config.py").is_file():
        config = str(path.parent / "config.py")
    weights = f"{weights_url.rstrip('/')}/{final.name}" if weights_url else _rel(final, index.parent)
    update_index(index, metafile_entry(name, meta, config, weights))
    return final
