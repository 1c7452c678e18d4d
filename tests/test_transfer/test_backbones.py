"""Registered backbones: channels and strides match what the shipped necks/heads expect, TimmFeatureBackbone
reads them from timm and freezes like mmdet's ResNet, and weights load verified (right ones change the
parameters to the file's values, wrong ones fail with counts) through ``init_weights``."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from transfer.mm.backbones import TimmFeatureBackbone
from transfer.mm.checkpoint import BackboneCheckpointError
from transfer.mm.preflight import build_backbone

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "transfer").glob("*.py"))
SCOPES = ("mmdet", "mmseg", "mmpose")


def registry(scope: str):
    return importlib.import_module(f"{scope}.registry").MODELS


def build(scope: str, cfg: dict):
    with DefaultScope.overwrite_default_scope(scope):
        return registry(scope).build(cfg)


def frozen_fraction(module: torch.nn.Module) -> float:
    params = list(module.parameters())
    return sum(p.numel() for p in params if not p.requires_grad) / sum(p.numel() for p in params)


def features(backbone, size=64):
    backbone.eval()
    with torch.no_grad():
        return backbone(torch.zeros(1, 3, size, size))


@pytest.mark.parametrize("path", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_backbone_outputs_fit_the_configs_neck_and_heads(path):
    cfg = Config.fromfile(str(path))
    size = 64
    outs = features(build_backbone(cfg, cfg.default_scope), size)
    channels = [o.shape[1] for o in outs]
    strides = [size // o.shape[-1] for o in outs]
    model = cfg.model
    if cfg.default_scope == "mmdet":
        assert channels == list(model.neck.in_channels)
        # the FPN levels from start_level on carry the anchors (RPN's for two-stage, RetinaHead's P3-P7)
        head, start = model.get("rpn_head") or model.bbox_head, model.neck.get("start_level", 0)
        assert strides[start:] == list(head.anchor_generator.strides[:len(outs) - start])
    elif cfg.default_scope == "mmseg":
        for head in (model.decode_head, model.auxiliary_head):
            assert channels[head.in_index] == head.in_channels
        assert strides[model.decode_head.in_index] == 8  # D8: dilated to output stride 8
    else:
        assert channels[-1] == model.head.in_channels
        codec = model.head.decoder
        # SimpleBaseline's three stride-2 deconvolutions turn a stride-32 map into the heatmap.
        assert strides[-1] == 8 * codec.input_size[0] // codec.heatmap_size[0]


TIMM_MODELS = ["resnet18", "densenet121", "mobilenetv3_large_100", "regnety_002", "efficientnet_b0"]


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("name", TIMM_MODELS)
def test_timm_feature_backbone_channels_and_strides_come_from_timm(scope, name):
    backbone = build(scope, dict(type="TimmFeatureBackbone", model_name=name, out_indices=(1, 2, 3, 4)))
    assert isinstance(backbone, TimmFeatureBackbone)
    info = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4)).feature_info
    assert backbone.out_channels == info.channels() and backbone.out_strides == [4, 8, 16, 32]
    outs = features(backbone, 64)
    assert [o.shape[1] for o in outs] == backbone.out_channels
    assert [64 // o.shape[-1] for o in outs] == backbone.out_strides


def test_timm_feature_backbone_feeds_an_fpn():
    backbone = build("mmdet", dict(type="TimmFeatureBackbone", model_name="regnety_002"))
    fpn = build("mmdet", dict(type="FPN", in_channels=backbone.out_channels, out_channels=32, num_outs=5))
    outs = fpn(features(backbone, 64))
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2, 1]


def test_output_stride_dilates():
    backbone = TimmFeatureBackbone("resnet18", output_stride=8)
    assert backbone.out_strides == [4, 8, 8, 8]
    assert [64 // o.shape[-1] for o in features(backbone, 64)] == [4, 8, 8, 8]


def test_frozen_stages_and_norm_eval_match_mmdet_resnet_semantics():
    backbone = TimmFeatureBackbone("resnet18", frozen_stages=1, norm_eval=True)
    backbone.train()
    m = backbone.model
    for module in (m.conv1, m.bn1, m.layer1):
        assert all(not p.requires_grad for p in module.parameters())
        assert not any(x.training for x in module.modules())
    assert all(p.requires_grad for p in m.layer2.parameters())
    assert not m.layer2[0].bn1.training  # norm_eval: every BN in eval mode
    assert m.layer2[0].conv1.training
    assert 0 < frozen_fraction(backbone) < 0.1
    unfrozen = TimmFeatureBackbone("resnet18")
    unfrozen.train()
    assert frozen_fraction(unfrozen) == 0 and unfrozen.model.bn1.training
    with pytest.raises(ValueError, match="frozen_stages"):
        TimmFeatureBackbone("resnet18", out_indices=(1, 2), frozen_stages=3)


def test_frozen_stages_inside_a_flattened_container():
    # EfficientNet's feature levels live inside one `blocks` Sequential: freezing level 2 must leave
    # the later blocks trainable.
    backbone = TimmFeatureBackbone("efficientnet_b0", frozen_stages=2)
    blocks = backbone.model.blocks
    assert not any(p.requires_grad for p in backbone.model.conv_stem.parameters())
    assert not any(p.requires_grad for p in blocks[0].parameters())
    assert all(p.requires_grad for p in blocks[-1].parameters())


@pytest.mark.parametrize("scope", SCOPES)
def test_registered_once_per_toolbox_and_duplicates_fail(scope):
    importlib.import_module(f"transfer.mm.{scope}")
    reg = registry(scope)
    assert reg.get("TimmFeatureBackbone") is TimmFeatureBackbone
    assert reg.get("DarResNet").__module__ == f"transfer.mm.{scope}"
    with pytest.raises(KeyError, match="already registered"):
        reg.register_module(name="TimmFeatureBackbone", module=TimmFeatureBackbone)


# ------------------------------------------------------------------------------------ loading
def save_timm(tmp_path: Path, name: str, seed: int = 0, form: str = "published") -> tuple[Path, dict]:
    torch.manual_seed(seed)
    state = timm.create_model(name, pretrained=False).state_dict()
    obj = {"state_dict": state, "meta": {"arch": name}} if form == "published" else state
    path = tmp_path / f"{name}_{seed}.pth"
    torch.save(obj, path)
    return path, state


@pytest.mark.parametrize("scope", SCOPES)
def test_dar_resnet_init_weights_loads_the_file_exactly(tmp_path, scope):
    path, state = save_timm(tmp_path, "resnet18", form="raw")
    backbone = build(scope, dict(type="DarResNet", depth=18, out_indices=(0, 1, 2, 3),
                                 init_cfg=dict(type="Pretrained", checkpoint=str(path))))
    before = backbone.conv1.weight.detach().clone()
    backbone.init_weights()
    assert not torch.equal(before, backbone.conv1.weight)
    got = backbone.state_dict()
    assert set(got) == {k for k in state if not k.startswith("fc.")}
    # mmpose's ResNet zero-initialises residual norms in its own init: ours must load after it.
    assert all(torch.equal(got[k], state[k]) for k in got)


@pytest.mark.parametrize("scope", SCOPES)
def test_dar_resnet_rejects_a_checkpoint_of_another_depth(tmp_path, scope):
    path, _ = save_timm(tmp_path, "resnet18")
    backbone = build(scope, dict(type="DarResNet", depth=50, init_cfg=dict(type="Pretrained", checkpoint=str(path))))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with pytest.raises(BackboneCheckpointError, match=r"DarResNet\(depth=50\): \d+/\d+ model keys matched, "
                                                      r"\d+ missing") as info:
        backbone.init_weights()
    assert "\n" not in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in backbone.state_dict().items())


def test_timm_feature_backbone_loads_renamed_timm_keys(tmp_path):
    path, state = save_timm(tmp_path, "densenet121")  # FeatureListNet renames features.x -> features_x
    backbone = build("mmseg", dict(type="TimmFeatureBackbone", model_name="densenet121",
                                   init_cfg=dict(type="Pretrained", checkpoint=str(path))))
    backbone.init_weights()
    got = backbone.state_dict()
    assert torch.equal(got["model.features_conv0.weight"], state["features.conv0.weight"])
    assert torch.equal(got["model.features_denseblock4.denselayer16.conv2.weight"],
                       state["features.denseblock4.denselayer16.conv2.weight"])
    report = backbone.checkpoint_fit(path)
    assert report.ok and len(report.matched) == len(got) and report.dropped == ["classifier.weight",
                                                                               "classifier.bias"]
    wrong, _ = save_timm(tmp_path, "resnet18")
    other = TimmFeatureBackbone("densenet121", init_cfg=dict(type="Pretrained", checkpoint=str(wrong)))
    with pytest.raises(BackboneCheckpointError, match="TimmFeatureBackbone\\(densenet121\\).* missing"):
        other.init_weights()
