"""The upstream reference models our transfer configs follow (one per task, :mod:`transfer.tasks`), read
from the installed toolboxes' own configs. Used by ``python -m transfer.mm.doctor`` and the stack tests to
prove the stack builds and runs them.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from transfer.tasks import TASKS

# task -> (scope, config path inside the installed toolbox, what it is): each task's reference recipe
REFERENCE_CONFIGS: dict[str, tuple[str, str, str]] = {
    t.name: (t.scope, t.reference.config, t.reference.description) for t in TASKS.values()}


def toolbox_config_path(scope: str, path: str) -> Path:
    """Path of a config shipped inside an installed toolbox (``<package>/.mim/configs/<path>``)."""
    spec = importlib.util.find_spec(scope)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"toolbox {scope!r} is not installed")
    full = Path(spec.submodule_search_locations[0]) / ".mim" / "configs" / path
    if not full.is_file():
        raise FileNotFoundError(f"{scope} ships no config {path} (looked at {full})")
    return full


def sync_bn_to_bn(node: Any) -> Any:
    """Replace every ``SyncBN`` norm config by ``BN`` (SyncBN needs a process group and a GPU)."""
    if isinstance(node, dict):
        if node.get("type") == "SyncBN":
            node["type"] = "BN"
        for value in node.values():
            sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            sync_bn_to_bn(value)
    return node


def load_reference_config(task: str):
    """The installed toolbox's own config for ``task``, made CPU-buildable (BN for SyncBN) and kept free
    of pretrained downloads (weights are only fetched by ``init_weights``, which we never call here)."""
    from mmengine.config import Config

    scope, path, _ = REFERENCE_CONFIGS[task]
    cfg = Config.fromfile(str(toolbox_config_path(scope, path)))
    sync_bn_to_bn(cfg.model)
    return cfg


def build_reference_model(task: str):
    """Build the reference model of ``task`` (random weights) in its toolbox's registry scope."""
    from mmengine.registry import DefaultScope, init_default_scope

    import transfer  # noqa: F401  (compat fixes)

    cfg = load_reference_config(task)
    scope = REFERENCE_CONFIGS[task][0]
    registry = {
        "mmdet": "mmdet.registry",
        "mmseg": "mmseg.registry",
        "mmpose": "mmpose.registry",
    }[scope]
    _register_all(scope)
    init_default_scope(scope)
    models = __import__(registry, fromlist=["MODELS"]).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = models.build(cfg.model)
    return model.eval(), cfg


def _register_all(scope: str) -> None:
    if scope == "mmdet":
        from mmdet.utils import register_all_modules
    elif scope == "mmseg":
        from mmseg.utils import register_all_modules
    else:
        from mmpose.utils import register_all_modules
    register_all_modules(init_default_scope=False)
