"""``transfer.mm.compat.fix_mmengine_metafile_rereads``: mmengine parses a toolbox's metafiles for every
``mmdet::`` base of a config; with the fix each file is parsed once per process, and configs resolve to
exactly what mmengine resolves without it."""
from __future__ import annotations

import collections
from pathlib import Path

import pytest
from helpers.counted_calls import count_calls
from mmengine.config import Config
from mmengine.config import utils as config_utils
from mmengine.fileio import load as mmengine_load

from transfer.mm import compat

ROOT = Path(__file__).resolve().parents[2]
# two tiny detection recipes: four mmdet:: bases between them, three of them shared
CONFIGS = [ROOT / "configs" / "transfer" / name for name in ("faster-rcnn_r18_fpn_tiny.py", "retinanet_r18_fpn_tiny.py")]


@pytest.fixture
def counted(monkeypatch) -> collections.Counter:
    """mmengine's own ``load`` in ``mmengine.config.utils``, counting the files it parses, with the fix
    applied over it afresh."""
    return count_calls(monkeypatch, config_utils, "load", mmengine_load)


def test_the_fix_is_applied_when_transfer_is_imported():
    assert "mmengine-metafile-rereads" in compat.APPLIED
    assert getattr(config_utils.load, "_dar_transfer_fixed", False)


def test_each_metafile_is_parsed_once_and_configs_resolve_as_without_the_fix(counted):
    unfixed = [Config.fromfile(str(c)).to_dict() for c in CONFIGS]
    index = next(f for f in counted if f.endswith("model-index.yml"))
    assert counted[index] >= 4  # without the fix: once per mmdet:: base, the cost the fix removes
    assert len(set(counted.values())) == 1  # every metafile as often as the index
    counted.clear()
    assert compat.fix_mmengine_metafile_rereads()
    fixed = [Config.fromfile(str(c)).to_dict() for c in CONFIGS]
    fixed_again = [Config.fromfile(str(c)).to_dict() for c in CONFIGS]
    assert fixed == unfixed == fixed_again
    imported = mmengine_load(index)["Import"]
    assert set(counted.values()) == {1} and len(counted) == 1 + len(imported)
    assert compat.fix_mmengine_metafile_rereads()  # idempotent: no second wrapper
    assert not getattr(getattr(config_utils.load, "__wrapped__", None), "_dar_transfer_fixed", False)


def test_a_missing_external_base_fails_as_in_mmengine(counted, tmp_path):
    config = tmp_path / "bad.py"
    config.write_text("_base_ = ['mmdet::_base_/models/no-such-model.py']\n")
    with pytest.raises(FileNotFoundError) as unfixed:
        Config.fromfile(str(config))
    compat.fix_mmengine_metafile_rereads()
    with pytest.raises(FileNotFoundError) as fixed:
        Config.fromfile(str(config))
    assert str(fixed.value) == str(unfixed.value) and "no-such-model.py" in str(fixed.value)
