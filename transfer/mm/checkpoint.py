"""Read backbone weights in any of the forms the project writes and load them into a model, verified.

Accepted files (see the shared contracts in the README):

- a published model or pre-training's ``backbone.pth``: ``{"state_dict": ..., "meta": {...}}``;
- a full pre-training checkpoint: ``{"model": ..., "meta": ..., <resume state>}``;
- a raw timm state dict: ``{"conv1.weight": tensor, ...}``;
- an mmengine checkpoint of a whole detector/segmentor/pose model (keys ``backbone.*`` are kept).

Unlike mmengine's ``load_checkpoint`` (which only warns), loading here is never silent: every key is
counted as matched, missing, unexpected or shape-mismatched, and a checkpoint that leaves backbone keys
missing or has wrong shapes raises :class:`BackboneCheckpointError` with one line naming the counts and a
few examples. Classifier keys (timm's ``default_cfg['classifier']``) are dropped before matching.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Keys a target may lack in the checkpoint without harm: BN's update counter is not a weight.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)
# Fallback classifier names when the checkpoint carries no timm arch: the common timm heads.
DEFAULT_CLASSIFIERS = ("fc", "classifier", "head", "head.fc", "last_linear")
_EXAMPLES = 3


class BackboneCheckpointError(ValueError):
    """A backbone weights file that cannot be read or does not fit; the message is one line."""


# ----------------------------------------------------------------------------------- reading
def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict | None]:
    """Return ``(state_dict, meta)`` from a loaded checkpoint object in one of the accepted forms."""
    if not isinstance(obj, Mapping):
        raise BackboneCheckpointError(f"{source} is not a state dict (it holds a {type(obj).__name__})")
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else None
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), Mapping):
            state = obj[key]
            break
    else:
        state, meta = obj, None
    bad = [k for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if not state or bad:
        found = ", ".join(map(str, list(obj)[:5])) or "nothing"
        raise BackboneCheckpointError(
            f"{source} is not a state dict: no 'state_dict' or 'model' entry of tensors "
            f"(top-level keys: {found}{', ...' if len(obj) > 5 else ''})")
    return dict(state), dict(meta) if meta is not None else None


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP's ``module.``; if the keys carry ``backbone.`` (a whole mm model), keep only those."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state


def classifier_names(arch: str | None, default: Iterable[str] = DEFAULT_CLASSIFIERS) -> tuple[str, ...]:
    """timm's classifier module name(s) for ``arch`` (e.g. ``fc`` for resnets), else ``default``."""
    import timm

    cfg = timm.get_pretrained_cfg(arch) if arch else None
    if cfg is None or not cfg.classifier:
        return tuple(default)
    return (cfg.classifier,) if isinstance(cfg.classifier, str) else tuple(cfg.classifier)


def drop_classifier(state: Mapping[str, torch.Tensor], names: Iterable[str]
                    ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Split off the keys of the classifier modules ``names``; return ``(kept, dropped_keys)``."""
    prefixes = tuple(f"{n}." for n in names)
    kept = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    return kept, [k for k in state if k not in kept]


def read_backbone_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Load ``path`` and return its backbone ``(state_dict, meta)`` with prefixes stripped."""
    path = Path(path)
    if not path.is_file():
        raise BackboneCheckpointError(f"backbone checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # A full pre-training checkpoint may pickle non-tensor resume state (RNG states, NumPy
        # scalars). The file is the user's own, so a full unpickle is acceptable here.
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
            raise BackboneCheckpointError(f"{path} is not a PyTorch checkpoint ({type(err).__name__})") from err
    except Exception as err:  # noqa: BLE001
        raise BackboneCheckpointError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: "
                                      f"{str(err).splitlines()[0][:120]})") from err
    state, meta = unwrap_state_dict(obj, source=str(path))
    return strip_prefixes(state), meta


# ---------------------------------------------------------------------------------- matching
def identity_keys(key: str) -> list[str]:
    return [key]


@dataclass
class MatchReport:
    """How a checkpoint's keys line up with a target's, and the tensors to load (target naming)."""
    matched: dict[str, torch.Tensor] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, ckpt, model)
    dropped: list[str] = field(default_factory=list)  # classifier keys
    total: int = 0  # keys of the target

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched

    def summary(self) -> str:
        parts = [f"{len(self.matched)}/{self.total} model keys matched", f"{len(self.missing)} missing",
                 f"{len(self.mismatched)} shape-mismatched", f"{len(self.unexpected)} unexpected",
                 f"{len(self.dropped)} classifier keys dropped"]
        if self.missing:
            parts.append("missing e.g. " + ", ".join(self.missing[:_EXAMPLES]))
        if self.mismatched:
            parts.append("mismatched e.g. " + ", ".join(
                f"{k} {tuple(a)} in checkpoint vs {tuple(b)} in model" for k, a, b in self.mismatched[:_EXAMPLES]))
        if self.unexpected and not self.ok:
            parts.append("unexpected e.g. " + ", ".join(self.unexpected[:_EXAMPLES]))
        return ", ".join(parts)


def match_state_dict(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor | torch.Size],
                     key_candidates: Callable[[str], list[str]] = identity_keys,
                     optional: Iterable[str] = OPTIONAL_SUFFIXES) -> MatchReport:
    """Match checkpoint keys to ``target`` (a state dict or key -> shape). ``key_candidates(k)`` lists
    the target names a checkpoint key may take, first hit wins; target keys ending in ``optional`` may
    be absent without counting as missing."""
    shapes = {k: tuple(v.shape if isinstance(v, torch.Tensor) else v) for k, v in target.items()}
    report = MatchReport(total=len(shapes))
    for key, tensor in state.items():
        name = next((c for c in key_candidates(key) if c in shapes), None)
        if name is None or name in report.matched:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != shapes[name]:
            report.mismatched.append((name, tuple(tensor.shape), shapes[name]))
        else:
            report.matched[name] = tensor
    seen = set(report.matched) | {k for k, _, _ in report.mismatched}
    optional = tuple(optional)
    report.missing = [k for k in shapes if k not in seen and not k.endswith(optional)]
    return report


# ---------------------------------------------------------------------------------- loading
def load_backbone_weights(module: nn.Module, path: str | Path, classifier: Iterable[str] = (),
                          key_candidates: Callable[[str], list[str]] = identity_keys,
                          what: str | None = None) -> MatchReport:
    """Load the backbone weights in ``path`` into ``module``; raise on missing/mismatched keys.

    ``classifier`` names the module's own classifier modules (dropped from the checkpoint together with
    those of the checkpoint's timm arch, read from its meta). Logs the counts on success.
    """
    report, meta = verify_backbone_weights(module, path, classifier, key_candidates, what)
    apply_backbone_weights(module, report, path, meta, what)
    return report


def verify_backbone_weights(module: nn.Module, path: str | Path, classifier: Iterable[str] = (),
                            key_candidates: Callable[[str], list[str]] = identity_keys,
                            what: str | None = None) -> tuple[MatchReport, dict | None]:
    """Read ``path`` and match it against ``module`` without touching the module; raise if it does not fit."""
    state, meta = read_backbone_checkpoint(path)
    report = check_fit(module.state_dict(), state, meta, classifier, key_candidates)
    if not report.ok:
        what = what or type(module).__name__
        raise BackboneCheckpointError(f"backbone checkpoint {path} does not fit {what}: {report.summary()}")
    return report, meta


def apply_backbone_weights(module: nn.Module, report: MatchReport, path: str | Path, meta: Mapping | None,
                           what: str | None = None) -> None:
    """Copy a verified report's tensors into ``module`` and log the counts."""
    result = module.load_state_dict(report.matched, strict=False)
    # Our report and torch's must agree; a disagreement would mean a bug in the matching above.
    left = [k for k in result.missing_keys if not k.endswith(OPTIONAL_SUFFIXES)]
    assert not left and not result.unexpected_keys, (left, result.unexpected_keys)
    _log(f"loaded backbone weights from {path} into {what or type(module).__name__}: {report.summary()}"
         + (f" (meta: {describe_meta(meta)})" if meta else ""))


def check_fit(target: Mapping[str, torch.Tensor | torch.Size], state: Mapping[str, torch.Tensor],
              meta: Mapping | None, classifier: Iterable[str] = (),
              key_candidates: Callable[[str], list[str]] = identity_keys) -> MatchReport:
    """Pure part of :func:`load_backbone_weights`: drop classifier keys, then match against ``target``."""
    arch = meta.get("arch") if meta else None
    names = set(classifier) | set(classifier_names(arch, default=() if classifier else DEFAULT_CLASSIFIERS))
    kept, dropped = drop_classifier(state, names)
    report = match_state_dict(kept, target, key_candidates)
    report.dropped = dropped
    return report


def describe_meta(meta: Mapping | None) -> str:
    """A short ``arch=..., method=...`` line for logs."""
    if not meta:
        return "none"
    keys = ("arch", "method", "epochs", "relative_cost_samples", "top1")
    return ", ".join(f"{k}={meta[k]}" for k in keys if k in meta) or f"{len(meta)} fields"


def _log(msg: str) -> None:
    from mmengine.logging import print_log

    print_log(msg, logger="current")


# ------------------------------------------------------------------- whole-model checkpoints (tools/test.py)
def check_whole_model(target: Mapping[str, torch.Tensor | torch.Size], obj: Any, path: str | Path,
                      what: str = "the model", train_hint: str = "tools/train.py CONFIG --backbone FILE"
                      ) -> MatchReport:
    """Check that the loaded checkpoint ``obj`` covers every key of ``target`` (a whole detector,
    segmentor or pose model) with the right shapes, as ``tools/test.py`` needs; return the counts.

    mmengine's ``load_checkpoint`` only warns about missing keys, so a test of a checkpoint that leaves
    the heads at their random initialisation would exit 0 with a meaningless score. A backbone-only file
    (a published model, ``backbone.pth``, a timm state dict) is named as such; anything else that does
    not fit raises with the counts and a few examples.
    """
    state, meta = unwrap_state_dict(obj, source=str(path))
    state = {k.removeprefix("module."): v for k, v in state.items()}  # mmengine's default revise_keys
    report = match_state_dict(state, target)
    if report.ok:
        return report
    model_prefixes = {k.split(".", 1)[0] for k in target}
    if "backbone" in model_prefixes and not any(k.split(".", 1)[0] in model_prefixes for k in state):
        kind = ("a backbone-only published file" if meta and meta.get("published_name") else
                "a backbone-only weights file" + (f" ({describe_meta(meta)})" if meta else ""))
        backbone = match_state_dict(strip_prefixes(state), {k.removeprefix("backbone."): v
                                                            for k, v in target.items() if k.startswith("backbone.")})
        weights = len(report.matched) + len(report.missing) + len(report.mismatched)
        raise BackboneCheckpointError(
            f"{path} is {kind} ({len(backbone.matched)} of its {len(state)} keys are backbone weights, none named "
            f"as in {what}: {len(report.matched)} of its {weights} weights would load, the heads would stay random); "
            f"tools/test.py needs a fine-tuned checkpoint ({train_hint.replace('FILE', str(path))})")
    raise BackboneCheckpointError(f"checkpoint {path} does not cover {what}: {report.summary()}")
