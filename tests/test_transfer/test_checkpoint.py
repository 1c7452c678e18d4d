"""transfer.mm.checkpoint: every accepted file form, the key matching, and one-line errors for bad files."""
from __future__ import annotations

import pytest
import timm
import torch

from transfer.mm.checkpoint import (
    BackboneCheckpointError,
    check_fit,
    classifier_names,
    load_backbone_weights,
    match_state_dict,
    read_backbone_checkpoint,
    strip_prefixes,
    unwrap_state_dict,
)


@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False).state_dict()


META = {"arch": "resnet18", "method": "dar", "epochs": 2}


@pytest.mark.parametrize("form", ["published", "pretrain_full", "raw", "ddp_raw", "mm_model"])
def test_every_form_reads_to_the_same_backbone(tmp_path, resnet18_state, form):
    state = resnet18_state
    obj = {
        "published": {"state_dict": state, "meta": META},
        "pretrain_full": {"model": state, "meta": META, "optimizer": {"state": {}, "param_groups": []},
                          "epoch": 2},
        "raw": state,
        "ddp_raw": {f"module.{k}": v for k, v in state.items()},
        "mm_model": {"state_dict": {**{f"backbone.{k}": v for k, v in state.items()},
                                    "neck.conv.weight": torch.zeros(1)}, "meta": {"epoch": 12}},
    }[form]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    got, meta = read_backbone_checkpoint(path)
    assert list(got) == list(state)
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert meta == ({"epoch": 12} if form == "mm_model" else META if form in ("published", "pretrain_full")
                    else None)


def test_full_checkpoint_with_non_tensor_resume_state_still_reads(tmp_path, resnet18_state):
    import numpy as np

    path = tmp_path / "epoch_2.pth"
    torch.save({"model": resnet18_state, "meta": META, "rng": np.random.default_rng(0).bit_generator.state,
                "np_scalar": np.float64(1.5)}, path)
    got, meta = read_backbone_checkpoint(path)
    assert len(got) == len(resnet18_state) and meta["arch"] == "resnet18"


@pytest.mark.parametrize("obj, needle", [
    ([1, 2, 3], "holds a list"),
    ({"epoch": 3, "lr": 0.1}, "not a state dict"),
    ({}, "not a state dict"),
    ({"state_dict": {"a": "not a tensor"}}, "not a state dict"),
])
def test_not_a_state_dict_is_one_clear_line(tmp_path, obj, needle):
    path = tmp_path / "bad.pth"
    torch.save(obj, path)
    with pytest.raises(BackboneCheckpointError, match=needle) as info:
        read_backbone_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_and_non_torch_files(tmp_path):
    with pytest.raises(BackboneCheckpointError, match="not found"):
        read_backbone_checkpoint(tmp_path / "nope.pth")
    text = tmp_path / "notes.pth"
    text.write_text("definitely not a checkpoint\n")
    with pytest.raises(BackboneCheckpointError, match="not a PyTorch checkpoint") as info:
        read_backbone_checkpoint(text)
    assert "\n" not in str(info.value)


def test_strip_prefixes_keeps_only_backbone_of_a_whole_model():
    t = torch.zeros(1)
    assert strip_prefixes({"module.backbone.a": t, "module.head.b": t}) == {"a": t}
    assert strip_prefixes({"module.a": t, "b": t}) == {"a": t, "b": t}


def test_unwrap_prefers_state_dict_then_model():
    t = torch.zeros(1)
    assert unwrap_state_dict({"state_dict": {"a": t}, "model": {"b": t}})[0] == {"a": t}
    assert unwrap_state_dict({"model": {"b": t}, "meta": {"arch": "x"}}) == ({"b": t}, {"arch": "x"})


def test_match_counts_matched_missing_unexpected_and_mismatched():
    z = torch.zeros
    target = {"a.weight": z(2, 3), "b.weight": z(4), "c.weight": z(1), "bn.num_batches_tracked": z(())}
    state = {"a.weight": z(2, 3), "b.weight": z(5), "extra.weight": z(1)}
    rep = match_state_dict(state, target)
    assert list(rep.matched) == ["a.weight"]
    assert rep.missing == ["c.weight"]  # num_batches_tracked is optional
    assert rep.mismatched == [("b.weight", (5,), (4,))]
    assert rep.unexpected == ["extra.weight"]
    assert not rep.ok
    summary = rep.summary()
    assert "1/4 model keys matched" in summary and "1 missing" in summary and "c.weight" in summary
    assert "b.weight (5,) in checkpoint vs (4,) in model" in summary


def test_key_candidates_map_to_renamed_targets():
    z = torch.zeros(1)
    rep = match_state_dict({"features.conv0.weight": z}, {"model.features_conv0.weight": z},
                           key_candidates=lambda k: [f"model.{k}", "model." + k.replace(".", "_", 1)])
    assert rep.ok and list(rep.matched) == ["model.features_conv0.weight"]


def test_classifier_names_come_from_timm():
    assert classifier_names("resnet50") == ("fc",)
    assert classifier_names("densenet121") == ("classifier",)
    assert classifier_names("deit_tiny_distilled_patch16_224") == ("head", "head_dist")
    assert "fc" in classifier_names(None) and "classifier" in classifier_names("not-a-timm-arch")


def test_classifier_of_the_checkpoint_arch_is_dropped(resnet18_state):
    target = {k: v for k, v in resnet18_state.items() if not k.startswith("fc.")}
    rep = check_fit(target, resnet18_state, {"arch": "resnet18"})
    assert rep.ok and rep.dropped == ["fc.weight", "fc.bias"] and not rep.unexpected


def test_load_into_a_plain_module_changes_weights_and_wrong_weights_fail(tmp_path, resnet18_state):
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": resnet18_state, "meta": META}, path)
    torch.manual_seed(1)
    model = timm.create_model("resnet18", pretrained=False, num_classes=0)  # no fc: a backbone
    assert not torch.equal(model.conv1.weight, resnet18_state["conv1.weight"])
    rep = load_backbone_weights(model, path, classifier=("fc",))
    assert rep.ok and len(rep.matched) == len(model.state_dict())
    assert all(torch.equal(v, resnet18_state[k]) for k, v in model.state_dict().items())

    wrong = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34", pretrained=False).state_dict(), wrong)
    other = timm.create_model("resnet50", pretrained=False, num_classes=0)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(BackboneCheckpointError, match=r"does not fit .*missing.*shape-mismatched") as info:
        load_backbone_weights(other, wrong, classifier=("fc",))
    assert "\n" not in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items())  # nothing half-loaded
