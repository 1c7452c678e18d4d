"""SIGKILL at seeded moments -- a step, inside a checkpoint's bytes, before ``last_checkpoint`` moves,
inside the end-of-epoch rule -- then ``--resume``: bit-identical to an uninterrupted run, every method.

Every shipped tiny config is covered (a new method's config is picked up by the glob) with two kills in
one chain; two methods that keep state across ranks also under 2 gloo ranks. More kills per run:
``python tests/test_reliability/harness.py CONFIG --kills 10 [--ranks 2]``.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from harness import ROOT, kill_and_resume

CONFIGS = sorted((ROOT / "configs" / "pretrain").glob("tiny_digits_*.py"))
OPTIONS = ["data.batch_size=128"]  # 11 steps an epoch: 6 epochs in seconds, every seam still passed
TWO_RANK_OPTIONS = ["data.batch_size=64"]  # the same global batch on 2 ranks
EXTRA = {"tiny_digits_online": ["method.pool_size=256"]}  # the pool must hold a batch


def options(config: Path, base: list[str] = OPTIONS) -> list[str]:
    return base + EXTRA.get(config.stem, [])


def _seed(config: Path) -> int:
    return zlib.crc32(config.stem.encode())  # a different draw of moments per method, stable across runs


def test_every_method_has_a_tiny_config():
    assert len(CONFIGS) >= 6 and all(p.stem.startswith("tiny_digits_") for p in CONFIGS)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem.removeprefix("tiny_digits_"))
def test_sigkill_and_resume_is_bit_identical(config, references, tmp_path):
    opts = options(config)
    reference = references.get(config, opts)
    report = kill_and_resume(config, tmp_path, kills=2, seed=_seed(config), options=opts, reference=reference)
    assert len(report.kills) == 2 and all(r.returncode == -9 for r in report.runs if r.kind == "killed")
    assert report.compared and not report.differences


@pytest.mark.parametrize("method", ["dar", "online"])
def test_sigkill_one_of_two_ranks_and_resume_is_bit_identical(method, references, tmp_path):
    config = ROOT / "configs" / "pretrain" / f"tiny_digits_{method}.py"
    opts = options(config, TWO_RANK_OPTIONS)
    reference = references.get(config, opts, ranks=2)
    report = kill_and_resume(config, tmp_path, kills=2, ranks=2, seed=_seed(config) + 1, options=opts,
                             reference=reference)
    assert len(report.kills) == 2 and not report.differences
