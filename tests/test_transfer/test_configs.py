"""Every shipped transfer config loads, builds its model, says what it is, and differs from its upstream
config only in the backbone weights; the tiny ones have their full config's model but for the settings
they name, use CPU norms and the tiny data's classes."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from mmengine.config import Config

from transfer.mm.preflight import build_backbone, replace_data_root, required_paths

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "transfer").glob("*.py"))
FULL = [c for c in CONFIGS if "tiny" not in c.stem]
TINY = [c for c in CONFIGS if "tiny" in c.stem]


def ids(paths):
    return [p.stem for p in paths]


def test_the_issue_configs_ship():
    names = {c.stem for c in CONFIGS}
    assert {"faster-rcnn_r50_fpn_1x_coco", "mask-rcnn_r50_fpn_1x_coco", "retinanet_r50_fpn_1x_coco",
            "td-hm_res50_8xb64-210e_coco-256x192",
            "td-hm_res101_8xb64-210e_coco-256x192", "pspnet_r50b-d8_4xb2-80k_cityscapes-769x769"} <= names
    assert {c.stem.split("_")[0] for c in TINY} == {c.stem.split("_")[0] for c in FULL}


def build_model(cfg):
    from mmengine.registry import DefaultScope

    scope = cfg.default_scope
    with DefaultScope.overwrite_default_scope(scope):
        return importlib.import_module(f"{scope}.registry").MODELS.build(cfg.model)


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_config_loads_builds_and_has_a_header(path):
    text = path.read_text()
    header = text[:text.index("\n_base_ =")]
    assert header.startswith("# ") and "Launch" in header and "Cost" in header
    if path in FULL:
        assert "Reproduces" in header and "upstream" in header
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope in ("mmdet", "mmseg", "mmpose")
    assert cfg.model.backbone.type == "DarResNet"
    assert cfg.model.backbone.init_cfg.type == "Pretrained"
    model = build_model(cfg)
    assert type(model.backbone).__name__ == "DarResNet"
    assert type(model.backbone).__module__ == f"transfer.mm.{cfg.default_scope}"
    assert sum(p.numel() for p in model.parameters()) > 5e6


def flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(node, (list, tuple)):
        out = {}
        for i, v in enumerate(node):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): node}


UPSTREAM = {
    "faster-rcnn_r50_fpn_1x_coco": "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
    "mask-rcnn_r50_fpn_1x_coco": "mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py",
    "retinanet_r50_fpn_1x_coco": "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py",
    "td-hm_res50_8xb64-210e_coco-256x192":
        "mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py",
    "td-hm_res101_8xb64-210e_coco-256x192":
        "mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res101_8xb64-210e_coco-256x192.py",
    "pspnet_r50b-d8_4xb2-80k_cityscapes-769x769": "mmseg::pspnet/pspnet_r50b-d8_4xb2-80k_cityscapes-769x769.py",
}


def upstream_path(ref: str) -> str:
    """``'mmdet::x/y.py'`` -> the file inside the installed package's ``.mim/configs``."""
    scope, rel = ref.split("::")
    return str(Path(importlib.import_module(scope).__file__).parent / ".mim" / "configs" / rel)


@pytest.mark.parametrize("path", FULL, ids=ids(FULL))
def test_full_config_differs_from_upstream_only_in_the_backbone_weights(path):
    ours = flatten(Config.fromfile(str(path)).to_dict())
    upstream = flatten(Config.fromfile(upstream_path(UPSTREAM[path.stem])).to_dict())
    # Inheriting with `mmdet::...` tags every dict with `_scope_` (the scope the config already has).
    changed = {k for k in ours.keys() | upstream.keys() if ours.get(k, "<absent>") != upstream.get(k, "<absent>")
               and not k.endswith("_scope_")}
    allowed = {"custom_imports.imports.0", "custom_imports.allow_failed_imports", "backbone_checkpoint",
               "model.backbone.type", "model.backbone.init_cfg.checkpoint", "model.backbone.init_cfg.type",
               "model.pretrained"}
    assert changed <= allowed, sorted(changed - allowed)
    assert ours["model.backbone.type"] == "DarResNet"
    # The upstream backbone class is each toolbox's plain-stem ResNet (PSPNet r50b: ResNet, not V1c).
    assert upstream["model.backbone.type"] == "ResNet"


def assigned(path: Path, name: str) -> ast.expr | list:
    """What a config file assigns to ``name`` itself (a literal list as a list), read from its text."""
    node = next(n.value for n in ast.parse(path.read_text()).body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == name)
    return ast.literal_eval(node) if isinstance(node, ast.List) else node


def own_model_settings(path: Path) -> set[str]:
    """The ``model`` keys a config file sets itself (dotted paths; a dict with ``_delete_`` counts whole)."""
    model = assigned(path, "model")

    def paths(call: ast.expr, prefix: str) -> set[str]:
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "dict"):
            return {prefix}
        if any(k.arg == "_delete_" for k in call.keywords):
            return {prefix}
        return {p for k in call.keywords for p in paths(k.value, f"{prefix}.{k.arg}" if prefix else k.arg)}

    return paths(model, "")


def full_config_of(tiny: Path) -> Path | None:
    """The full config a tiny one scales down: same recipe and backbone name (``faster-rcnn_r50_...``),
    for tiny configs that do not inherit another tiny config (the ResNet-18/101 variants do)."""
    if any(base.endswith("_tiny.py") for base in assigned(tiny, "_base_")):
        return None
    stem = "_".join(tiny.stem.split("_")[:2])
    return next((c for c in FULL if c.stem.startswith(stem + "_")), None)


SCALED = [(t, full_config_of(t)) for t in TINY if full_config_of(t) is not None]


def test_every_recipe_has_a_tiny_version_checked_against_it():
    assert {f for _, f in SCALED} == set(FULL) - {c for c in FULL if "res101" in c.stem}


@pytest.mark.parametrize("tiny, full", SCALED, ids=[t.stem for t, _ in SCALED])
def test_tiny_config_has_the_full_configs_model_but_for_what_it_sets(tiny, full):
    small = flatten(Config.fromfile(str(tiny)).model.to_dict())
    big = flatten(Config.fromfile(str(full)).model.to_dict())
    changed = {k for k in small.keys() | big.keys() if small.get(k, "<absent>") != big.get(k, "<absent>")}
    own = own_model_settings(tiny)
    assert changed and all(any(k == p or k.startswith(p + ".") for p in own) for k in changed), \
        sorted(k for k in changed if not any(k == p or k.startswith(p + ".") for p in own))


@pytest.mark.parametrize("path", TINY, ids=ids(TINY))
def test_tiny_config_is_cpu_sized_and_reads_the_tiny_data(path, tmp_path):
    cfg = Config.fromfile(str(path))
    assert "SyncBN" not in cfg.pretty_text
    assert cfg.data_root.startswith("data/tiny/")
    loop = cfg.train_cfg
    assert loop.get("max_epochs", 0) <= 2 and loop.get("max_iters", 0) <= 100  # the demo budget: 60
    assert cfg.train_dataloader.num_workers == 0 and not cfg.train_dataloader.persistent_workers
    paths = required_paths(cfg, ("train_dataloader", "val_dataloader", "test_dataloader"))
    assert paths and all(str(p).startswith("data/tiny/") for _, p in paths)
    new = tmp_path / "elsewhere" / Path(cfg.data_root).name
    assert replace_data_root(cfg, new) > 0
    moved = required_paths(cfg, ("train_dataloader", "val_dataloader", "test_dataloader"))
    assert all(str(p).startswith(str(new) + "/") for _, p in moved), moved
    assert "data/tiny" not in cfg.pretty_text


def test_tiny_coco_classes_match_the_tiny_data():
    from transfer.tinydata import TINY_COCO_CLASSES

    for path in TINY:
        cfg = Config.fromfile(str(path))
        if cfg.default_scope == "mmdet":
            assert tuple(cfg.train_dataloader.dataset.metainfo.classes) == TINY_COCO_CLASSES
            head = cfg.model.roi_head.bbox_head if "roi_head" in cfg.model else cfg.model.bbox_head  # RetinaNet
            assert head.num_classes == len(TINY_COCO_CLASSES)


@pytest.mark.parametrize("path", [c for c in CONFIGS if "r18" in c.stem or "res18" in c.stem],
                         ids=lambda p: p.stem)
def test_r18_variants_build_a_resnet18(path):
    cfg = Config.fromfile(str(path))
    backbone = build_backbone(cfg, cfg.default_scope)
    assert backbone.depth == 18 and "resnet18" in cfg.model.backbone.init_cfg.checkpoint
