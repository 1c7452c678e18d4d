"""``transfer.mm.compat.fix_mmengine_config_reformats``: mmengine formats a config's text with yapf each time
it is asked (five times a fine-tuning run); with the fix each text is formatted once per process, and the
text is exactly what yapf gives without it."""
from __future__ import annotations

import collections
import copy
from pathlib import Path

import pytest
from helpers.counted_calls import count_calls
from mmengine.config import Config
from mmengine.config import config as mm_config
from yapf.yapflib.yapf_api import FormatCode

from transfer.mm import compat

ROOT = Path(__file__).resolve().parents[2]
# the five ResNet-18 tiny recipes (what the demo and the tests fine-tune)
TINY = sorted(p for p in (ROOT / "configs" / "transfer").glob("*_tiny.py") if "18" in p.stem.split("_")[1])


@pytest.fixture
def counted(monkeypatch) -> collections.Counter:
    """yapf's own ``FormatCode`` in ``mmengine.config.config``, counting the texts it formats, with the fix
    applied over it afresh."""
    return count_calls(monkeypatch, mm_config, "FormatCode", FormatCode)


def test_the_fix_is_applied_when_transfer_is_imported():
    assert "mmengine-config-reformats" in compat.APPLIED
    assert getattr(mm_config.FormatCode, "_dar_transfer_fixed", False)


@pytest.mark.parametrize("path", TINY, ids=[p.stem for p in TINY])
def test_each_text_is_formatted_once_and_reads_as_without_the_fix(path, counted):
    cfg = Config.fromfile(str(path))
    unfixed = [cfg.pretty_text, cfg.pretty_text]
    assert len(counted) == 1 and list(counted.values()) == [2]  # without the fix: every call formats
    counted.clear()
    assert compat.fix_mmengine_config_reformats()
    fixed = [cfg.pretty_text, copy.deepcopy(cfg).pretty_text, cfg.pretty_text]  # the runner reads copies
    assert fixed == [unfixed[0]] * 3 and unfixed[0] == unfixed[1]
    assert list(counted.values()) == [1]
    cfg.merge_from_dict({"train_cfg.max_iters": 3})  # another text: formatted anew, and correctly
    assert "max_iters=3" in cfg.pretty_text and len(counted) == 2
    assert compat.fix_mmengine_config_reformats()  # idempotent: no second wrapper
    assert not getattr(getattr(mm_config.FormatCode, "__wrapped__", None), "_dar_transfer_fixed", False)


def test_a_text_yapf_rejects_fails_as_in_mmengine(counted):
    cfg = Config({"a": 1})
    broken = "a = (\n"
    with pytest.raises(Exception) as unfixed:
        mm_config.FormatCode(broken, style_config={"based_on_style": "pep8"})
    compat.fix_mmengine_config_reformats()
    with pytest.raises(Exception) as fixed:
        mm_config.FormatCode(broken, style_config={"based_on_style": "pep8"})
    assert type(fixed.value) is type(unfixed.value) and str(fixed.value) == str(unfixed.value)
    assert cfg.pretty_text.strip() == "a = 1"
