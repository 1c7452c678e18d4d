"""The one loss table: per-sample records of the epoch in progress, merged over all ranks.

Every loss-driven method records the per-sample values of each trained batch (the loss, and whatever
else its rule reads: correctness, confidence, ...) and at the end of the epoch needs them for the whole
dataset, identical on every rank, exactly as a single process would have them. :class:`LossTable` is that
component, used by DaR (``samplers.DaRSampler``), InfoBatch and KAKURENBO and meant for every method after
them:

* ``record(indices, *values)`` buffers a batch on this rank (CPU, int64 indices, float32 values);
* ``sync()`` (collective) gathers every rank's buffer -- indices as int64 whatever the values' dtype
  (a float index is exact only below 2^24, below 256 in bf16), values as float32 -- and writes them into
  NaN-initialised tables, the first record of an index winning (``distributed.scatter_into_table``);
* ``collect()`` (collective) syncs, hands back the epoch's tables and starts the next epoch empty;
* ``state_dict()`` (collective: syncs first) / ``load_state_dict()``: a mid-epoch checkpoint keeps what
  the epoch has recorded so far, so a resume continues bit for bit;
* ``table_state(state, key, old_key, columns)``: the table's state in a method's checkpoint state, also
  from a checkpoint written before this module existed (each method kept its synced tables itself).

Padding repeats: a ``DistributedSampler``-style shard pads the epoch order to a multiple of the ranks by
repeating its head, so ``p = R*ceil(S/R) - S < R`` samples are trained twice, the repeat of order position
``j < p`` at position ``S + j`` on rank ``(S + j) mod R = (S mod R) + j > j``, in each rank's last batch.
The genuine record sits at the epoch's first step on rank ``j``: gathered in rank order it always precedes
its repeat (and a checkpoint's sync between the two has already written it), so "first record wins" keeps
the genuine record and the table holds what a single process would hold.

A loss-driven method in a screen (``pretrain/methods/base.py`` has the protocol)::

    class MyMethod(SubsetMethod):
        def __init__(self, params, run):
            super().__init__(params, run)
            self.losses = LossTable(run.num_samples)                  # or columns=("loss", "correct")
        def record(self, record):
            self.losses.record(record.indices, record.losses)
        def end_epoch(self, epoch):
            table = self.losses.collect()["loss"]                     # all ranks' losses, NaN = not trained
            self.sampler.subset = my_rule(table, ...)                 # the same on every rank
            return EpochResult(log={...})
        def state_dict(self):
            return {**super().state_dict(), "losses": self.losses.state_dict()}
        def load_state_dict(self, state):
            super().load_state_dict(state)
            self.losses.load_state_dict(state["losses"])
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .distributed import gather_rows, scatter_into_table

__all__ = ["LossTable", "keep_latest", "table_state"]


class LossTable:
    """Per-sample float32 ``columns`` (default: the loss) of the epoch in progress, for ``num_samples`` samples."""

    def __init__(self, num_samples: int, columns: Sequence[str] = ("loss",)) -> None:
        if num_samples < 1 or not columns or len(set(columns)) != len(columns):
            raise ValueError(f"a loss table needs num_samples >= 1 and distinct columns, got {num_samples}, {columns}")
        self.num_samples, self.columns = int(num_samples), tuple(columns)
        self.tables = self._empty()
        self._idx: list[torch.Tensor] = []
        self._rows: list[torch.Tensor] = []

    def _empty(self) -> dict[str, torch.Tensor]:
        return {c: torch.full((self.num_samples,), math.nan, dtype=torch.float32) for c in self.columns}

    def record(self, indices: torch.Tensor, *values: torch.Tensor) -> None:
        """Buffer one batch: its dataset indices and one tensor per column (any device and dtype, detached)."""
        if len(values) != len(self.columns):
            raise ValueError(f"record(): {len(values)} value tensors for the columns {self.columns}")
        idx = indices.detach().reshape(-1).to("cpu", torch.int64)
        cols = [v.detach().reshape(-1).to("cpu", torch.float32) for v in values]
        if any(c.numel() != idx.numel() for c in cols):
            raise ValueError(f"record(): {idx.numel()} indices but {[c.numel() for c in cols]} values")
        self._idx.append(idx)
        self._rows.append(torch.stack(cols, dim=1))

    def sync(self) -> None:
        """Every rank's buffered records into the tables (collective; the first record of an index wins)."""
        idx = torch.cat(self._idx) if self._idx else torch.empty(0, dtype=torch.int64)
        rows = torch.cat(self._rows) if self._rows else torch.empty(0, len(self.columns), dtype=torch.float32)
        all_idx = gather_rows(idx[:, None]).reshape(-1)  # int64 all the way
        all_rows = gather_rows(rows)
        for column, key in enumerate(self.columns):
            scatter_into_table(self.tables[key], all_idx, all_rows[:, column])
        self._idx, self._rows = [], []

    def collect(self) -> dict[str, torch.Tensor]:
        """The epoch's synced tables (collective); the table starts over empty (all NaN)."""
        self.sync()
        out, self.tables = self.tables, self._empty()
        return out

    def state_dict(self) -> dict[str, Any]:
        """What the epoch has recorded so far (collective: syncs first)."""
        self.sync()
        return {"columns": list(self.columns), "tables": {k: v.clone() for k, v in self.tables.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if tuple(state["columns"]) != self.columns:
            raise ValueError(f"loss table state has columns {tuple(state['columns'])}, this one {self.columns}")
        self.tables = {k: state["tables"][k].to(torch.float32).clone() for k in self.columns}
        self._idx, self._rows = [], []


def table_state(state: Mapping[str, Any], key: str, old_key: str, columns: Sequence[str]) -> Mapping[str, Any]:
    """``state[key]``, a :meth:`LossTable.state_dict`; from a checkpoint written before the one loss table
    (commit 8746336, issue 16) the same state made of what it held under ``old_key``.

    Those checkpoints held the epoch's synced table itself -- one float32 tensor (DaR's sampler
    ``loss_table``, InfoBatch's ``epoch_losses``) or a dict of one per column (KAKURENBO's
    ``epoch_tables``) -- written after a sync, so with nothing buffered: exactly what
    :meth:`LossTable.state_dict` holds now (its columns, its tables), so a resume from one continues as
    from a checkpoint the current code wrote.
    """
    if key in state:
        return state[key]
    if old_key not in state:
        raise KeyError(f"checkpoint state has neither {key!r} nor (written before the one loss table) {old_key!r}")
    old = state[old_key]
    tables = dict(old) if isinstance(old, Mapping) else {columns[0]: old}
    if len(tables) != len(columns):
        raise ValueError(f"checkpoint {old_key!r} holds {sorted(tables)}, expected the columns {list(columns)}")
    return {"columns": list(columns), "tables": tables}


def keep_latest(latest: torch.Tensor, epoch: torch.Tensor) -> torch.Tensor:
    """``latest`` (in place) with every entry ``epoch`` recorded (not NaN) replaced: each sample's last record."""
    seen = ~torch.isnan(epoch)
    latest[seen] = epoch[seen]
    return latest
