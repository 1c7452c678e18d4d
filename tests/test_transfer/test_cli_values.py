"""Issue 20, "one line for every bad value": ``--cfg-options`` values of the keys users set most, checked
before a Runner is built (in process: the same ``train_main``/``test_main`` the tools call); a folder given
as the config; ``backbone_checkpoint=PATH``; a fine-tuned detector checkpoint given to publish_model."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transfer.mm import cli

ROOT = Path(__file__).resolve().parents[2]
SEG = str(ROOT / "configs" / "transfer" / "pspnet_r18b-d8_tiny.py")
DET = str(ROOT / "configs" / "transfer" / "faster-rcnn_r18_fpn_tiny.py")
POSE = str(ROOT / "configs" / "transfer" / "td-hm_res50_tiny.py")


def one_line(capsys, argv, *needles, main=cli.train_main) -> str:
    rc = main(list(map(str, argv)))
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


BAD = [  # (key, value as typed, what the line says)
    ("train_cfg.max_iters", "abc", "must be a positive integer"),
    ("train_cfg.max_iters", "0", "must be a positive integer"),
    ("train_cfg.val_interval", "1.5", "must be a positive integer"),
    ("train_dataloader.batch_size", "abc", "must be a positive integer"),
    ("val_dataloader.batch_size", "-2", "must be a positive integer"),
    ("train_dataloader.num_workers", "two", "must be an integer >= 0"),
    ("optim_wrapper.optimizer.lr", "fast", "must be a positive number"),
    ("optim_wrapper.optimizer.lr", "-0.1", "must be a positive number"),
    ("optim_wrapper.optimizer.weight_decay", "-1", "must be a number >= 0"),
    ("default_hooks.checkpoint.interval", "0", "or -1: never"),
    ("default_hooks.logger.interval", "x", "must be a positive integer"),
    ("randomness.seed", "abc", "must be an integer"),
    ("train_dataloader.dataset.data_root", "1", "must be a folder path"),
]


@pytest.fixture(scope="module")
def seg_cfg():
    from mmengine.config import Config

    return Config.fromfile(SEG)


@pytest.mark.parametrize(("key", "value", "problem"), BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_a_bad_value_is_one_line(key, value, problem, seg_cfg):
    """The value as ``--cfg-options`` parses it (mmengine's DictAction), merged, then checked."""
    import copy

    from mmengine.config import DictAction

    from transfer.mm.preflight import PreflightError, check_values

    options = {key: DictAction._parse_iterable(value)}
    cfg = copy.deepcopy(seg_cfg)
    check_values(cfg)  # the shipped values pass
    cfg.merge_from_dict(options)
    with pytest.raises(PreflightError) as err:
        check_values(cfg, options)
    assert str(err.value).startswith(f"{key}={options[key]!r} (from --cfg-options) ") and problem in str(err.value)


def test_a_bad_value_stops_before_the_runner(tmp_path, tiny_root, backbones, capsys):
    work = tmp_path / "work"
    one_line(capsys, [SEG, "--backbone", backbones["resnet18"], "--data-root", tiny_root / "cityscapes",
                      "--work-dir", work, "--cfg-options", "train_cfg.max_iters=abc"],
             "train_cfg.max_iters='abc' (from --cfg-options) must be a positive integer")
    assert not work.exists()  # stopped before mmengine made the work dir


def test_the_loop_kind_is_checked(tmp_path, tiny_root, backbones, capsys):
    # td-hm_res50_tiny trains by epochs: max_iters would be a TypeError inside mmengine's loop
    one_line(capsys, [POSE, "--backbone", backbones["resnet50"], "--data-root", tiny_root / "coco",
                      "--work-dir", tmp_path / "w", "--cfg-options", "train_cfg.max_iters=5"],
             "train_cfg.max_iters=5", "epoch-based loop", "train_cfg.max_epochs")


def test_tools_test_checks_values_too(tmp_path, tiny_root, capsys):
    ckpt = tmp_path / "iter_1.pth"
    ckpt.write_bytes(b"x")  # never read: the value check comes first
    one_line(capsys, [SEG, ckpt, "--data-root", tiny_root / "cityscapes", "--cfg-options",
                      "test_dataloader.batch_size=abc"], "test_dataloader.batch_size='abc'", main=cli.test_main)


def test_the_real_tool_prints_one_line(tmp_path, tiny_root, backbones):
    """One of the issue's cases through ``tools/train.py`` itself (no traceback from mmengine or torch)."""
    for option in ("train_dataloader.batch_size=abc",):
        proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), SEG, "--backbone",
                               str(backbones["resnet18"]), "--data-root", str(tiny_root / "cityscapes"),
                               "--work-dir", str(tmp_path / "w"), "--cfg-options", option],
                              capture_output=True, text=True, cwd=ROOT)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert lines[-1].startswith(f"error: {option.split('=')[0]}='abc'"), proc.stderr[-2000:]


def test_a_folder_as_the_config_says_so(tmp_path, capsys):
    folder = ROOT / "configs" / "transfer"
    configs = sorted(p.name for p in folder.glob("*.py"))
    err = one_line(capsys, [folder], f"{folder} is a folder, not a config file", f"({len(configs)}: {configs[0]}")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "configs/transfer/"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [
        err.replace(str(folder), "configs/transfer/")], proc.stderr


def test_backbone_checkpoint_option_is_the_backbone(tmp_path, tiny_root, backbones, capsys):
    """``backbone_checkpoint`` is the configs' variable, substituted when the file is read: the option acts
    as --backbone (the upstream key, model.backbone.init_cfg.checkpoint, works as it is)."""
    import argparse

    base = [SEG, "--data-root", str(tiny_root / "cityscapes")]
    for option in (f"backbone_checkpoint={backbones['resnet18']}",
                   f"model.backbone.init_cfg.checkpoint={backbones['resnet18']}"):
        args = cli.get_train_parser().parse_args([*base, "--cfg-options", option])
        cfg, _ = cli.load_config(args)
        assert cfg.model.backbone.init_cfg.checkpoint == str(backbones["resnet18"]), option
        assert cfg.model.backbone.type == "DarResNet"
    args = cli.get_train_parser().parse_args([*base, "--cfg-options", "backbone_checkpoint=none"])
    assert cli.load_config(args)[0].model.backbone.init_cfg is None
    one_line(capsys, [*base, "--backbone", backbones["resnet50"], "--cfg-options",
                      f"backbone_checkpoint={backbones['resnet18']}"], "disagree; pass one")
    # a missing file given this way is the same one line as --backbone's
    one_line(capsys, [*base, "--work-dir", tmp_path / "w", "--cfg-options",
                      f"backbone_checkpoint={tmp_path / 'nope.pth'}"], "backbone checkpoint not found")
    assert isinstance(args, argparse.Namespace)


def test_configs_name_the_key_upstream_tools_need():
    for path in sorted((ROOT / "configs" / "transfer").glob("*.py")):
        text = path.read_text()
        if "backbone_checkpoint =" in text:
            assert "--cfg-options model.backbone.init_cfg.checkpoint=PATH" in text, path.name


def test_publish_model_names_a_fine_tuned_detector_checkpoint(tmp_path):
    """A whole Faster R-CNN saved the way mmengine's CheckpointHook saves it (``meta.cfg``, ``state_dict``)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import save_checkpoint

    import transfer.mm.mmdet  # noqa: F401  (DarResNet)

    cfg = Config.fromfile(DET)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(cfg.model)
    ckpt = tmp_path / "iter_2.pth"
    save_checkpoint({"meta": {"cfg": cfg.pretty_text, "iter": 2}, "state_dict": model.state_dict()}, str(ckpt))
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "publish_model.py"), str(ckpt),
                           str(tmp_path / "pub" / "x")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: {ckpt} is a fine-tuned FasterRCNN checkpoint (mmengine; the whole model: backbone, neck, "
        "rpn_head, roi_head, iteration 2), not a pre-trained backbone: publish the pre-training work dir, "
        "checkpoint or backbone.pth it was fine-tuned from (tools/test.py evaluates fine-tuned checkpoints)"], \
        proc.stderr
    assert not (tmp_path / "pub").exists() or not any((tmp_path / "pub").iterdir())
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["meta"]["iter"] == 2
