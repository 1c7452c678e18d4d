"""``runtime.compile=True`` compiles once: dynamo's counters stay flat over three epochs for every method.

Each shipped tiny config trains 3 epochs at 16 px, batch 128 (11 steps an epoch, a last batch of 67 and,
for the subset methods, other last-batch sizes as the subset changes; online trains b of a pool,
Selective Backprop a kept fraction of some batches), compiled with inductor on the CPU. Every batch is
padded to a fixed size (``runtime.pad_batches``, on with ``compile``), so the number of frames dynamo
compiled must be the same after epochs 1, 2 and 3, and the first step's per-sample losses must equal
those of an eager run with the same padding to 1e-5 (same initial weights, same batch). The padded
sizes are the method's (``train_batch_sizes``): Selective Backprop's selecting steps train at its kept
size, not at b + 1 (checked cheaply in eager mode below, in CI).

Compiling is the cost (30-130 s wall a method on the shared 2-core machine): CI runs DaR (a last batch
whose size changes with the subset) and online (a selected batch out of a pool); the other methods run
with ``-m extended``.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from mmengine import Config

from pretrain.config import build_config
from pretrain.env import Env
from pretrain.trainer import Trainer

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "pretrain").glob("tiny_digits_*.py"))
IN_CI = ("tiny_digits_dar", "tiny_digits_online")
DAR_LIKE = {"method.refresh": [2]}
OPTIONS = {  # what 3 epochs at 16 px need of each method (its schedule within 3 epochs, scoring <= 16 px)
    "dar": DAR_LIKE, "dar_random": DAR_LIKE, "dar_mixup": DAR_LIKE,
    "fixed_subset": {"method.match.refresh": [2]}, "shortened": {"method.match.refresh": [2]},
    "online": {"method.pool_size": 256, "method.score_resolution": 8, "method.warmup_steps": 0},
    "selective_backprop": {"method.start": 0.0},  # selecting from epoch 1: every shape shows in epoch 1
}
PARAMS = [pytest.param(c, marks=[pytest.mark.slow] if c.stem in IN_CI else [pytest.mark.extended],
                       id=c.stem.removeprefix("tiny_digits_")) for c in CONFIGS]


def make_trainer(config: Path, tmp_path: Path, compile_: bool) -> Trainer:
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict({"schedule.epochs": 3, "schedule.milestones": [2], "data.batch_size": 128,
                         "data.img_size": 16, "runtime.compile": compile_, "runtime.pad_batches": True, "seed": 0,
                         **OPTIONS.get(config.stem.removeprefix("tiny_digits_"), {})})
    if cfg.schedule.get("sched", "step") != "step":
        cfg.schedule.milestones = []
    work_dir = tmp_path / ("compiled" if compile_ else "eager")
    work_dir.mkdir()
    return Trainer(build_config(cfg), Env(), work_dir)


def first_step_losses(trainer: Trainer) -> list[torch.Tensor]:
    """Capture every StepRecord's losses (the first is compared with eager)."""
    seen: list[torch.Tensor] = []
    record = trainer.method.record
    trainer.method.record = lambda rec: (seen.append(rec.losses.clone()), record(rec))[1]
    return seen


@pytest.mark.parametrize("config", PARAMS)
def test_compiled_once_and_equal_to_eager(config, tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled = make_trainer(config, tmp_path, True)
    losses = first_step_losses(compiled)
    frames: list[int] = []
    close = compiled.close_epoch
    compiled.close_epoch = lambda: (close(), frames.append(counters["frames"]["ok"]))[0]
    compiled.train()
    assert len(frames) == 3 and frames[0] >= 1
    assert frames == [frames[0]] * 3, f"dynamo compiled again after epoch 1: frames after each epoch {frames}"
    assert counters["stats"]["unique_graphs"] == frames[0]

    eager = make_trainer(config, tmp_path, False)
    eager_losses = first_step_losses(eager)
    eager.steps = eager.feed.steps_in_epoch()
    eager.model.train()
    eager.method.begin_epoch(1)
    images, targets, indices = next(iter(eager.feed.begin(1, 0)))
    eager.run_step(eager.to_device(images, targets, indices))
    assert torch.allclose(losses[0], eager_losses[0], rtol=1e-5, atol=1e-5)


def test_padded_sizes_are_the_methods_with_the_full_batch_as_b_plus_1():
    from pretrain.trainer import padded_sizes

    assert padded_sizes(128, (128,)) == (129,)  # every method's default: one graph, a folded last batch too
    assert padded_sizes(128, (64, 128)) == (64, 129)
    assert padded_sizes(128, ()) == (129,)


def test_selective_backprop_trains_a_padded_selecting_step_at_its_kept_size(tmp_path):
    """Eager with ``pad_batches`` (the shapes compile sees): a selecting step's batch is padded to
    ``int(keep * b)``, not to b + 1; every other batch to the smallest declared size that holds it."""
    from pretrain.selection.selective_backprop import kept_count, selects

    config = next(c for c in CONFIGS if c.stem == "tiny_digits_selective_backprop")
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict({"schedule.epochs": 1, "data.batch_size": 32, "data.img_size": 8, "runtime.pad_batches": True,
                         "method.start": 0.0, "method.end": 1.0, "method.scale_factor": 1.0, "seed": 0})
    trainer = Trainer(build_config(cfg), Env(), tmp_path)
    b, keep = 32, cfg.method.keep
    k = kept_count(b, keep)
    assert 2 <= k < b and trainer.batch_sizes == (k, b + 1)
    seen: list[tuple[int, int]] = []  # (samples selected, rows the criterion got)
    select, criterion = trainer.method.select, trainer.criterion
    trainer.method.select = lambda batch, step: (chosen := select(batch, step), seen.append([chosen.indices.numel()]))[0]
    trainer.criterion = lambda logits, targets: (seen[-1].append(logits.shape[0]), criterion(logits, targets))[1]
    trainer.steps = trainer.feed.steps_in_epoch()
    trainer.model.train()
    trainer.method.begin_epoch(1)
    for images, targets, indices in itertools.islice(trainer.feed.begin(1, 0), 4):
        trainer.run_step(trainer.to_device(images, targets, indices))
    assert all(rows == min(s for s in (k, b + 1) if s >= n) for n, rows in seen)
    params = trainer.method.params
    selecting = [selects(i, trainer.steps, i, params) for i in range(len(seen))]  # one epoch: step i is batch i
    assert any(selecting) and not all(selecting)
    assert [rows == k for _, rows in seen] == selecting  # a selecting step at k, every other at b + 1
