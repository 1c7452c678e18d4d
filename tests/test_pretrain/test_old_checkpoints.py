"""Checkpoints written before the one loss table (commit 8746336, issue 16) still resume.

Before it, each loss-driven method kept its epoch's synced loss table itself, under its own key; now the
table is ``pretrain.selection.loss_table.LossTable`` and its state sits under a new key:

=============  ==========================================  ==============================================
method         before (``git show 8746336^:<file>``)       now
=============  ==========================================  ==============================================
DaR sampler    ``"loss_table": <float32 [N]>``             ``"losses": {"columns": ["loss"], "tables": ..}``
InfoBatch      ``"epoch_losses": <float32 [N]>``           ``"losses": {...}``
KAKURENBO      ``"epoch_tables": {column: <float32 [N]>}`` ``"records": {"columns": [...], "tables": ..}``
=============  ==========================================  ==============================================

Every other key is the same. The old ``state_dict`` synced its buffers before writing the table, so the
old table is exactly the new table state's contents. Each test runs a method into the middle of an
epoch (a partly recorded table), writes its state in the old layout, loads it into a fresh method and
checks that the fresh method's state is the one the current code wrote; for DaR and InfoBatch the rest
of the epoch then ends the same.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from pretrain.methods import build_method
from pretrain.methods.base import Batch, RunInfo, StepInfo, StepRecord
from pretrain.selection.loss_table import table_state

ROOT = Path(__file__).resolve().parents[2]
N, EPOCHS, BATCH, CLASSES = 40, 4, 8, 3
CONFIGS = {
    "dar": dict(type="dar", warmup=1, interval=1, keep=0.6, refresh=[3]),
    "infobatch": dict(type="infobatch", prune_ratio=0.5, delta=0.875),
    "kakurenbo": dict(type="kakurenbo", max_fraction=0.4, tau=0.6, warmup_epochs=1, milestones=[0.5], factors=[1.0, 0.5]),
}


def old_layout(name: str, state: dict[str, Any]) -> dict[str, Any]:
    """The current method state in the layout of 8746336^ (see the module docstring)."""
    old = dict(state)
    if name == "dar":
        sampler = dict(old["sampler"])
        sampler["loss_table"] = sampler.pop("losses")["tables"]["loss"]
        old["sampler"] = sampler
    elif name == "infobatch":
        old["epoch_losses"] = old.pop("losses")["tables"]["loss"]
    else:
        old["epoch_tables"] = dict(old.pop("records")["tables"])
    return old


def same(a: Any, b: Any, where: str = "state") -> None:
    """Equal nested states: same keys, tensors bitwise (NaN == NaN), everything else ==."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a.isnan(), b.isnan()) if a.is_floating_point() else True, where
        assert torch.equal(torch.nan_to_num(a, nan=0.0), torch.nan_to_num(b, nan=0.0)), where
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def fresh(name: str):
    method = build_method(CONFIGS[name], RunInfo(num_samples=N, epochs=EPOCHS, batch_size=BATCH, img_size=32,
                                                world_size=1, rank=0, seed=5))
    method.build_feed(None, 0)
    return method


def steps(method, epoch: int):
    """The epoch's batches as (indices, StepInfo), the sampler's order."""
    method.begin_epoch(epoch)
    method.sampler.set_epoch(epoch)
    order = torch.tensor(list(method.sampler))
    total = -(-order.numel() // BATCH)
    return [(order[lo:lo + BATCH], StepInfo(epoch, s, total, 0)) for s, lo in enumerate(range(0, order.numel(), BATCH))]


def record(method, idx: torch.Tensor, step: StepInfo) -> None:
    losses = ((idx * 7919 + step.epoch * 31) % 97).to(torch.float32) / 10  # a loss of (index, epoch)
    logits = torch.nn.functional.one_hot(idx % CLASSES, CLASSES).to(torch.float32) * (idx % 5)[:, None]
    batch = method.select(Batch(torch.zeros(idx.numel(), 1), idx % CLASSES, idx), step)
    method.record(StepRecord(batch.indices, losses, logits, batch.targets, step))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_pre_loss_table_checkpoint_loads_into_the_state_the_current_code_writes(name):
    method = fresh(name)
    first = steps(method, 1)
    for idx, step in first[: len(first) // 2]:  # the middle of epoch 1: a partly recorded table
        record(method, idx, step)
    state = method.state_dict()
    table = state["sampler"]["losses"] if name == "dar" else state["records" if name == "kakurenbo" else "losses"]
    loss = table["tables"]["loss"]
    assert loss.isnan().any() and not loss.isnan().all()

    resumed = fresh(name)
    resumed.load_state_dict(old_layout(name, state))
    same(resumed.state_dict(), state)
    if name == "kakurenbo":  # its end of epoch needs a model (the refresh pass): the state is what matters
        return
    half = len(first) // 2
    resumed.begin_epoch(1)  # as the trainer resumes: the epoch, then the feed's position in it
    resumed.sampler.set_epoch(1)
    resumed.sampler.set_start(half * BATCH)
    assert list(resumed.sampler) == torch.cat([i for i, _ in first[half:]]).tolist()
    for method_ in (method, resumed):
        for idx, step in first[half:]:
            record(method_, idx, step)
    a, b = method.end_epoch(1), resumed.end_epoch(1)
    assert a.log == b.log and torch.equal(method.sampler.subset, resumed.sampler.subset)
    same(resumed.state_dict(), method.state_dict())


def test_table_state_names_what_is_missing_or_does_not_fit():
    new = {"losses": {"columns": ["loss"], "tables": {"loss": torch.zeros(3)}}}
    assert table_state(new, "losses", "loss_table", ("loss",)) is new["losses"]
    with pytest.raises(KeyError, match="neither 'losses' nor .* 'loss_table'"):
        table_state({}, "losses", "loss_table", ("loss",))
    with pytest.raises(ValueError, match="'epoch_tables' holds \\['loss'\\], expected the columns"):
        table_state({"epoch_tables": {"loss": torch.zeros(3)}}, "records", "epoch_tables", ("loss", "correct"))


@pytest.mark.parametrize("path, old_line", [
    ("pretrain/selection/samplers.py", '"loss_table": self._table.clone(),'),
    ("pretrain/methods/infobatch.py", '"epoch_losses": self._epoch_losses.clone(),'),
    ("pretrain/methods/kakurenbo.py", '"epoch_tables": {k: v.clone() for k, v in self._epoch.items()}'),
])
def test_the_old_layout_is_the_one_8746336_parent_wrote(path, old_line):
    """The layout ``old_layout`` writes is the one in the source before the rename (when the clone has
    the history; a shallow clone skips)."""
    proc = subprocess.run(["git", "show", f"8746336^:{path}"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"no git history here ({proc.stderr.strip()[:80]})")
    assert old_line in proc.stdout
