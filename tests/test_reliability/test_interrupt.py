"""Interrupted at seeded moments, then ``--resume``: bit-identical to an uninterrupted run, every method.

SIGKILL at a step, inside a checkpoint's bytes, before ``last_checkpoint`` moves or inside the
end-of-epoch rule; a caught preemption signal (SIGTERM or SIGUSR1, alternating by method) finishes the
step, writes ``step_<n>.pth`` and exits 75. Every shipped tiny config is covered (a new method's config
is picked up by the glob): a chain of a SIGKILL and a preemption signal (``KILLS``), on 2 gloo ranks for the
methods whose state crosses ranks (the kill and the signal hit one rank, drawn), on one rank for the
others. CI runs each method's chain once: a method's 1-rank chain, and those of variants whose resumable
state is their method's, run under ``-m extended`` (see ``EXTENDED_ONLY``); methods whose only cross-rank
state is the shared loss table run their 1-rank chain in CI and their 2-rank one under ``-m extended``
(see ``LOSS_TABLE_ONLY``).
More: ``python tests/helpers/harness.py CONFIG --kills 10 --terms 3 [--ranks 2]``.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from helpers.harness import ROOT, TINY_OPTIONS, kill_and_resume
from mmengine.config import Config

from pretrain.methods import method_class

CONFIGS = sorted((ROOT / "configs" / "pretrain").glob("tiny_digits_*.py"))
OPTIONS = TINY_OPTIONS  # 11 steps an epoch at 16 px (helpers.harness says why)
TWO_RANK_OPTIONS = ["data.batch_size=64", "data.img_size=16"]  # the same global batch on 2 ranks
# online: the pool must hold a batch, and it scores at half the training resolution as its config does at 32 px
EXTRA = {"tiny_digits_online": ["method.pool_size=256", "method.score_resolution=8"]}
# SIGKILLs per chain (CI time: each is a run of the tiny config, up to its seam, ~15 s on one rank and
# ~25 s on two). One SIGKILL and one caught signal per chain. With today's configs and seeds the ten CI
# chains' SIGKILLs land on every kind of seam (7 Dec 2026: pointer 3, checkpoint 3, end-of-epoch rule 2,
# step 2); the draw is seeded per config, so a new method's chain adds its own. More per chain: the
# harness's command line (below).
KILLS = 1


def options(config: Path, base: list[str] = OPTIONS) -> list[str]:
    return base + EXTRA.get(config.stem, [])


def _seed(config: Path) -> int:
    return zlib.crc32(config.stem.encode())  # a different draw of moments per method, stable across runs


def _term_signal(config: Path) -> str:
    return ("SIGTERM", "SIGUSR1")[_seed(config) % 2]


def test_every_method_has_a_tiny_config():
    assert len(CONFIGS) >= 6 and all(p.stem.startswith("tiny_digits_") for p in CONFIGS)


def _cross_rank(config: Path) -> bool:
    """Whether this is the tiny config of a method that keeps state across ranks (its class's
    ``has_cross_rank_state``): ``tiny_digits_<method>.py``, not a variant of it (e.g. ``..._mixup``)."""
    method = Config.fromfile(str(config))["method"]["type"]
    return config.stem == f"tiny_digits_{method}" and method_class(method).has_cross_rank_state


# What CI leaves to ``-m extended`` (CI time), with the chain that covers the same resumable state:
# - a method with cross-rank state: its 2-rank chain (the same SIGKILL seams and signal, on one rank of
#   two, plus the gathered tables and per-rank generators; world size 1 runs the same state code and
#   skips the gather, and each method's ``test_two_gloo_ranks_agree_with_one_process`` compares the two);
# - controls whose whole state is the plain subset sampler's (a subset drawn once, or from (seed, epoch)
#   alone, or uniform's sampler for fewer epochs): uniform's chain;
# - variants of a method: ``dar_random`` is DaR's sampler and table with random scores (DaR's 2-rank
#   chain); ``infobatch_mixup`` is InfoBatch's table under Mixup, whose generator state ``dar_mixup``'s
#   chain covers.
# A new method is in CI unless it is named here or has cross-rank state (then its 2-rank chain is).
EXTENDED_ONLY = ("tiny_digits_fixed_subset", "tiny_digits_random_drop", "tiny_digits_shortened",
                 "tiny_digits_dar_random", "tiny_digits_infobatch_mixup")
# Methods whose only cross-rank state is the shared ``LossTable`` (gathered records, no generator state:
# their draws come from (seed, epoch)): the table's 2-rank path is DaR's chain, so CI runs their 1-rank
# chain (their own tables and scores) and leaves their 2-rank chain to ``-m extended``.
LOSS_TABLE_ONLY = ("tiny_digits_seta", "tiny_digits_ies")


def _two_rank_in_ci(config: Path) -> bool:
    return _cross_rank(config) and config.stem not in LOSS_TABLE_ONLY


ONE_RANK_CONFIGS = [pytest.param(c, marks=pytest.mark.extended) if c.stem in EXTENDED_ONLY or _two_rank_in_ci(c)
                    else c for c in CONFIGS]


@pytest.mark.slow
@pytest.mark.parametrize("config", ONE_RANK_CONFIGS, ids=lambda p: p.stem.removeprefix("tiny_digits_"))
def test_killed_and_preempted_then_resumed_is_bit_identical(config, references, tmp_path):
    opts = options(config)
    report = kill_and_resume(config, tmp_path, kills=KILLS, terms=1, term_signal=_term_signal(config),
                             seed=_seed(config), options=opts, reference=references.get(config, opts))
    assert len(report.kills) == KILLS and len(report.signalled) == 1
    assert all(r.returncode == -9 for r in report.runs if r.kind == "killed")
    assert [r.returncode for r in report.runs if r.kind.startswith("SIG")] == [75]
    assert report.compared and not report.differences
    assert not report.stale_temporaries  # a kill inside a write leaves one; the resume removes it


# On 2 ranks CI covers the methods whose state crosses ranks (gathered loss/score tables, per-rank
# generators) but not through the shared loss table alone (``LOSS_TABLE_ONLY``); the plain subset samplers
# follow under ``-m extended`` (CI time).
TWO_RANK_CONFIGS = [c if _two_rank_in_ci(c) else pytest.param(c, marks=pytest.mark.extended) for c in CONFIGS]


@pytest.mark.slow
@pytest.mark.parametrize("config", TWO_RANK_CONFIGS, ids=lambda p: p.stem.removeprefix("tiny_digits_"))
def test_two_ranks_killed_and_preempted_then_resumed_is_bit_identical(config, references, tmp_path):
    opts = options(config, TWO_RANK_OPTIONS)
    report = kill_and_resume(config, tmp_path, kills=KILLS, terms=1, ranks=2, seed=_seed(config) + 1,
                             term_signal=_term_signal(config), options=opts, reference=references.get(config, opts, 2))
    assert len(report.signalled) == 1 and len(report.kills) == KILLS and not report.differences
    assert all(r.returncode != 0 for r in report.runs if r.kind == "killed")
    # pretrain.torchrun (tools/dist_train.sh) passes the ranks' 75 on, where torchrun itself exits 1
    assert [r.returncode for r in report.runs if r.kind.startswith("SIG")] == [75]
    assert not report.stale_temporaries
