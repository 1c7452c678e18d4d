"""Fine-tuning curves and the frozen protocol through the real ``tools/train.py`` (mmseg, tiny PSPNet R18):

- ``metrics.json`` keeps every validation (iteration -> metrics), and a run killed with SIGKILL after its
  first validation and resumed ends with the uninterrupted run's history; resumed from a checkpoint whose
  validation the kill prevented, the resume evaluates that iteration itself;
- with the options the pipeline's ``frozen=True`` gives (``transfer.study.axes.frozen_options``) every
  backbone weight and BN statistic is bit-identical to the backbone file after fine-tuning, while the head
  trained, and ``metrics.json`` says ``protocol: frozen``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "transfer" / "pspnet_r18b-d8_tiny.py"
ITERS, EVERY = 4, 2  # validations (and checkpoints) at iterations 2 and 4


def _options() -> list[str]:
    from mmengine.config import Config

    from transfer.study.axes import frozen_options

    frozen = frozen_options(Config.fromfile(str(CONFIG)).to_dict())
    opts = {"train_cfg.max_iters": ITERS, "train_cfg.val_interval": EVERY, "default_hooks.checkpoint.interval": EVERY,
            "param_scheduler.0.end": ITERS, "randomness.seed": 0, **frozen}
    return ["--cfg-options", *(f"{k}={v}" for k, v in opts.items())]


def _argv(work: Path, backbone: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "train.py"), str(CONFIG), "--work-dir", str(work), "--backbone",
            str(backbone), "--data-root", str(data), *_options(), *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train(*argv: str) -> None:
    proc = subprocess.run(list(argv), cwd=ROOT, capture_output=True, text=True, timeout=900, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def _record(work: Path) -> dict:
    return json.loads((work / "metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tiny_root, backbones, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("curve") / "whole"
    _train(*_argv(work, backbones["resnet18"], tiny_root / "cityscapes"))
    return work


@pytest.mark.slow
def test_history_has_every_validation(uninterrupted):
    rec = _record(uninterrupted)
    assert [h["iter"] for h in rec["history"]] == list(range(EVERY, ITERS + 1, EVERY))
    assert all("mIoU" in h["metrics"] for h in rec["history"])
    assert rec["metrics"] == rec["history"][-1]["metrics"]  # metrics: the newest evaluation
    assert rec["protocol"] == "frozen" and rec["data_subset"] is None


def test_frozen_backbone_is_bit_identical(uninterrupted, backbones):
    timm_state = torch.load(backbones["resnet18"], map_location="cpu")["state_dict"]
    first = torch.load(uninterrupted / f"iter_{EVERY}.pth", map_location="cpu", weights_only=False)["state_dict"]
    last = torch.load(uninterrupted / f"iter_{ITERS}.pth", map_location="cpu", weights_only=False)["state_dict"]
    backbone = {k[len("backbone."):]: v for k, v in last.items() if k.startswith("backbone.")}
    compared = [k for k in backbone if k in timm_state]
    assert len(compared) == len([k for k in timm_state if not k.startswith("fc.")])  # every weight and BN buffer
    assert all(torch.equal(backbone[k], timm_state[k]) for k in compared), \
        [k for k in compared if not torch.equal(backbone[k], timm_state[k])][:5]
    head = [k for k in last if k.startswith("decode_head.") and last[k].is_floating_point()]
    assert any(not torch.equal(first[k], last[k]) for k in head)  # the head did train


def _kill_after_first_validation(argv: list[str], work: Path) -> None:
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            start_new_session=True)
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (work / "metrics.json").is_file() and _record(work).get("history"):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended ({proc.returncode}) before it was killed"


@pytest.mark.slow
def test_history_survives_kill_and_resume(uninterrupted, tiny_root, backbones, tmp_path):
    whole = _record(uninterrupted)["history"]
    work = tmp_path / "killed"
    argv = _argv(work, backbones["resnet18"], tiny_root / "cityscapes")
    _kill_after_first_validation(argv, work)
    assert [h["iter"] for h in _record(work)["history"]] == [EVERY]
    assert _record(work)["history"][0] == whole[0]  # the same run up to the kill
    # the kill landing between the checkpoint of iteration 2 and its validation: no record of it at all
    lost = tmp_path / "lost"
    shutil.copytree(work, lost)
    (lost / "metrics.json").unlink()
    (lost / "last_checkpoint").write_text(str(lost / f"iter_{EVERY}.pth"))
    for folder in (work, lost):
        _train(*_argv(folder, backbones["resnet18"], tiny_root / "cityscapes", "--resume"))
        history = _record(folder)["history"]
        assert [h["iter"] for h in history] == [h["iter"] for h in whole], folder.name
        assert history[0] == whole[0], folder.name  # kept (work), or evaluated again at the same weights (lost)
        assert set(history[-1]["metrics"]) == set(whole[-1]["metrics"])
