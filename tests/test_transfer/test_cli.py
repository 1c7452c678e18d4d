"""Bad input to the transfer CLI: one ``error:`` line, exit code 2, before any Runner (no work dir)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transfer.mm import cli
from transfer.mm.preflight import check_scope, replace_data_root, required_paths, set_backbone_checkpoint

ROOT = Path(__file__).resolve().parents[2]
DET_TINY = str(ROOT / "configs" / "transfer" / "faster-rcnn_r50_fpn_tiny.py")
SEG_TINY = str(ROOT / "configs" / "transfer" / "pspnet_r50b-d8_tiny.py")


def fails_with(capsys, argv, needle, main=cli.train_main) -> str:
    rc = main(list(map(str, argv)))
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("error: ") and "\n" not in err and needle in err, err
    return err


def test_missing_backbone(tmp_path, tiny_root, capsys):
    work = tmp_path / "work"
    fails_with(capsys, [DET_TINY, "--work-dir", work, "--data-root", tiny_root / "coco",
                        "--backbone", tmp_path / "nope.pth"], "backbone checkpoint not found")
    assert not work.exists()


def test_backbone_that_is_not_a_state_dict(tmp_path, tiny_root, capsys):
    bad = tmp_path / "list.pth"
    torch.save([1, 2, 3], bad)
    fails_with(capsys, [DET_TINY, "--work-dir", tmp_path / "w", "--data-root", tiny_root / "coco",
                        "--backbone", bad], "is not a state dict")


def test_backbone_of_the_wrong_architecture_says_how_many_keys_miss(tmp_path, tiny_root, backbones, capsys):
    work = tmp_path / "work"
    err = fails_with(capsys, [DET_TINY, "--work-dir", work, "--data-root", tiny_root / "coco",
                              "--backbone", backbones["resnet18"]], "does not fit DarResNet(depth=50)")
    assert "missing" in err and "shape-mismatched" in err and "e.g. layer" in err
    assert not work.exists()


def test_the_config_default_backbone_must_exist(tmp_path, tiny_root, capsys):
    fails_with(capsys, [DET_TINY, "--work-dir", tmp_path / "w", "--data-root", tiny_root / "coco"],
               "checkpoints/resnet50_backbone.pth (pass --backbone PATH")


def test_dataset_root_without_annotations_names_the_file(tmp_path, backbones, capsys):
    (tmp_path / "coco").mkdir()
    work = tmp_path / "work"
    fails_with(capsys, [DET_TINY, "--work-dir", work, "--data-root", tmp_path / "coco",
                        "--backbone", backbones["resnet50"]],
               f"dataset file not found: {tmp_path}/coco/annotations/instances_train2017.json")
    fails_with(capsys, [SEG_TINY, "--work-dir", work, "--data-root", tmp_path / "cityscapes",
                        "--backbone", backbones["resnet50"]], "cityscapes/leftImg8bit/train")
    assert not work.exists()


def test_config_of_another_scope(tmp_path, capsys):
    cfg = tmp_path / "cls.py"
    cfg.write_text("default_scope = 'mmpretrain'\nmodel = dict(type='ImageClassifier')\n")
    fails_with(capsys, [cfg], "config scope 'mmpretrain'")
    fails_with(capsys, [cfg, tmp_path / "x.pth"], "config scope 'mmpretrain'", main=cli.test_main)
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), str(cfg)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode != 0 and "mmpretrain" in proc.stderr.strip().splitlines()[-1]


def test_missing_config_and_missing_test_checkpoint(tmp_path, tiny_root, capsys):
    fails_with(capsys, [tmp_path / "none.py"], "config file not found")
    fails_with(capsys, [DET_TINY, tmp_path / "epoch_1.pth", "--data-root", tiny_root / "coco"],
               "checkpoint not found", main=cli.test_main)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    fails_with(capsys, [DET_TINY, junk, "--data-root", tiny_root / "coco", "--work-dir", tmp_path / "w"],
               "not a readable checkpoint", main=cli.test_main)


def test_amp_on_a_cpu_only_machine(tmp_path, tiny_root, backbones, capsys):
    if torch.cuda.is_available():
        pytest.skip("has a GPU: --amp is valid here")
    fails_with(capsys, [DET_TINY, "--amp", "--work-dir", tmp_path / "w", "--data-root", tiny_root / "coco",
                        "--backbone", backbones["resnet50"]], "--amp needs an accelerator")


# ------------------------------------------------------------------ config edits, unit level
def test_set_backbone_checkpoint_swaps_native_resnet_and_clears_mmseg_pretrained():
    from mmengine.config import Config

    cfg = Config(dict(model=dict(pretrained="torchvision://resnet50", backbone=dict(type="ResNet", depth=50))))
    set_backbone_checkpoint(cfg, "w.pth")
    assert cfg.model.backbone.type == "DarResNet" and cfg.model.pretrained is None
    assert cfg.model.backbone.init_cfg == dict(type="Pretrained", checkpoint="w.pth")
    set_backbone_checkpoint(cfg, None)
    assert cfg.model.backbone.init_cfg is None
    cfg.model.backbone.type = "mmpretrain.TIMMBackbone"
    with pytest.raises(ValueError, match="DarResNet or TimmFeatureBackbone"):
        set_backbone_checkpoint(cfg, "w.pth")


def test_replace_data_root_moves_every_derived_path():
    from mmengine.config import Config

    cfg = Config(dict(data_root="data/coco/", train_dataloader=dict(dataset=dict(
        data_root="data/coco/", ann_file="annotations/a.json", data_prefix=dict(img="train2017/"))),
        val_dataloader=dict(dataset=dict(data_root="data/coco/", ann_file="annotations/b.json",
                                         bbox_file="data/coco/det.json")),
        val_evaluator=dict(ann_file="data/coco/annotations/b.json"), other="data/coconut/x"))
    assert replace_data_root(cfg, "/x/tiny/coco") == 5
    paths = {str(p) for _, p in required_paths(cfg, ("train_dataloader", "val_dataloader"))}
    assert paths == {"/x/tiny/coco/annotations/a.json", "/x/tiny/coco/train2017", "/x/tiny/coco/det.json",
                     "/x/tiny/coco/annotations/b.json"}
    assert cfg.other == "data/coconut/x"  # a mere string prefix match is not the dataset folder


def test_check_scope():
    assert check_scope({"default_scope": "mmpose"}, "c.py") == "mmpose"
    with pytest.raises(ValueError, match="not one of mmdet, mmpose, mmseg"):
        check_scope({}, "c.py")
