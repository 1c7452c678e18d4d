"""Shared fixtures: the tiny datasets (generated once per session by transfer.tinydata, for all xdist workers:
``helpers.session_once``; tests only read them) and randomly
initialised timm ResNets saved in timm key naming, standing in for pre-training's backbone.pth."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from helpers.session_once import run_once, shared_root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory, worker_id) -> Path:
    from transfer.tinydata import generate

    def make(folder: Path) -> dict:
        generate(folder / "data", seed=0, log=lambda _msg: None)
        return {}

    folder = shared_root(tmp_path_factory, worker_id) / "tiny_transfer"
    run_once(folder, make)
    return folder / "data"


def save_backbone(path: Path, arch: str, seed: int = 0) -> Path:
    """A timm ``arch`` with random weights, saved as pre-training's backbone.pth (classifier included)."""
    torch.manual_seed(seed)
    state = timm.create_model(arch, pretrained=False).state_dict()
    torch.save({"state_dict": state, "meta": {"arch": arch, "method": "random-init", "epochs": 0}}, path)
    return path


@pytest.fixture(scope="session")
def make_backbone():
    return save_backbone


@pytest.fixture(scope="session")
def backbones(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("backbones")
    return {arch: save_backbone(folder / f"{arch}.pth", arch) for arch in ("resnet18", "resnet50")}
