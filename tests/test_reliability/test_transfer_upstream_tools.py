"""Issue 20, upstream tools on the lite stack: mmdet's, mmseg's and mmpose's own installed
``.mim/tools/train.py`` and ``test.py`` on a tiny config, and an upstream model built without importing
``transfer``, find the lite ``mmcv._ext`` through the finder ``tools/setup_env.py`` installs (a ``.pth`` in
the venv's site-packages running ``transfer/mm/ext_finder.py``; no installed file edited). mmdet's test.py
imports ``mmcv.ops`` before the config's ``custom_imports`` can import ``transfer``: without the finder it
failed with ``No module named 'mmcv._ext'``. The backbone weights are passed with the key the configs name
for upstream tools, ``model.backbone.init_cfg.checkpoint``.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from helpers.transfer_runs import ROOT, TIMEOUT_S

from transfer.mm import ext_finder, mmcv_lite_ops

LITE = mmcv_lite_ops.compiled_ops_installed() is False
CONFIGS = {  # toolbox -> (tiny config, dataset folder under data/tiny)
    "mmdet": ("faster-rcnn_r18_fpn_tiny.py", "coco"),
    "mmseg": ("pspnet_r18b-d8_tiny.py", "cityscapes"),
    "mmpose": ("td-hm_res18_tiny.py", "coco"),
}


def tools_of(toolbox: str) -> Path:
    return Path(importlib.util.find_spec(toolbox).submodule_search_locations[0]) / ".mim" / "tools"


def test_setup_installed_the_finder():
    pth = Path(sysconfig.get_paths()["purelib"]) / ext_finder.PTH_NAME
    if not LITE:
        assert not pth.exists()  # the full stack has the compiled ops
        return
    assert pth.is_file(), f"{pth} missing: run `make env` (tools/setup_env.py installs it)"
    assert pth.read_text() == ext_finder.pth_line(str(ROOT / "transfer" / "mm" / "ext_finder.py"))
    assert ext_finder.installed() is not None  # this interpreter ran it at start


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A folder to run the upstream tools in: data/tiny/{coco,cityscapes} as the tiny configs read them."""
    import timm

    from transfer.tinydata import generate

    cwd = tmp_path_factory.mktemp("upstream")
    generate(cwd / "data" / "tiny", seed=0, num_train=8, num_val=4, size=256, classification=(0, 0),
             log=lambda _msg: None)
    torch.manual_seed(0)
    backbone = cwd / "resnet18.pth"
    torch.save({"state_dict": timm.create_model("resnet18").state_dict(), "meta": {"arch": "resnet18"}}, backbone)
    return {"cwd": cwd, "backbone": backbone}


def upstream(toolbox: str, script: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)  # transfer only as the installed project (custom_imports), like a user's run
    return subprocess.run([sys.executable, str(tools_of(toolbox) / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.slow
@pytest.mark.parametrize("toolbox", list(CONFIGS))
def test_the_toolbox_tools_train_and_test(toolbox, tiny):
    config, _ = CONFIGS[toolbox]
    work = tiny["cwd"] / f"work_{toolbox}"
    options = ["--cfg-options", f"model.backbone.init_cfg.checkpoint={tiny['backbone']}", "train_cfg.max_iters=1",
               "train_cfg.val_interval=1", "default_hooks.checkpoint.interval=1", "val_cfg=None",
               "val_dataloader=None", "val_evaluator=None"]
    train = upstream(toolbox, "train.py", ROOT / "configs" / "transfer" / config, "--work-dir", work, *options,
                     cwd=tiny["cwd"])
    assert train.returncode == 0, train.stderr[-3000:]
    assert (work / "iter_1.pth").is_file()
    test = upstream(toolbox, "test.py", ROOT / "configs" / "transfer" / config, work / "iter_1.pth",
                    "--work-dir", work / "test", cwd=tiny["cwd"])
    assert test.returncode == 0, test.stderr[-3000:]
    assert "mmcv._ext" not in test.stderr + train.stderr
    assert any((work / "test").rglob("*.json")), "test.py wrote no results"


def test_an_upstream_model_without_transfer(tiny):
    """mmdet's own ResNet (init_cfg=Pretrained) and mmcv's RoIAlign/nms, in a process that never imports
    transfer itself (the finder imports it when mmcv.ops asks for mmcv._ext)."""
    code = f"""
import sys, torch
from mmcv.ops import RoIAlign, nms
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
register_all_modules()
m = MODELS.build(dict(type='ResNet', depth=18, init_cfg=dict(type='Pretrained', checkpoint={str(tiny['backbone'])!r})))
m.init_weights()
x = m(torch.zeros(1, 3, 64, 64))[0]
r = RoIAlign((2, 2), 1.0, 0, aligned=True)(x, torch.tensor([[0.0, 0, 0, 8, 8]]))
k = nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11]]), torch.tensor([0.9, 0.8]), 0.5)[1]
print(tuple(r.shape), k.tolist(), vars(sys.modules['mmcv._ext']).get('PROVIDED_BY'))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tiny["cwd"], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lite = "transfer.mm.mmcv_lite_ops" if LITE else "None"
    assert proc.stdout.strip().splitlines()[-1] == f"(1, 64, 2, 2) [0] {lite}"
