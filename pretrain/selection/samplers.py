"""Samplers that train on a (changing) subset of the dataset: thin stateful adapters over ``dar.py``.

All samplers share one epoch order: the current subset, shuffled by a generator derived from
``(seed, epoch)`` alone (identical on every rank and after a resume), padded like
``DistributedSampler`` to a multiple of ``num_replicas`` by repeating its head, and sharded
``rank::num_replicas``. Call order per epoch: ``set_epoch(e)`` -> iterate -> ``record(...)`` every
step -> ``end_epoch(e)``. Resume: ``load_state_dict`` -> ``set_epoch(e)`` -> ``set_start(pos)``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from .dar import DaRParams, DaRState, dar_transition, initial_state, select_hardest, select_random
from .distributed import gather_ints, world_info
from .loss_table import LossTable, table_state

__all__ = [
    "DaRSampler",
    "FixedSubsetSampler",
    "SubsetSampler",
    "UniformSampler",
    "derive_seed",
]


def derive_seed(seed: int, purpose: str, epoch: int = 0) -> int:
    """A 63-bit seed for one purpose and epoch; stable across Python/torch versions (unlike ``hash``)."""
    digest = hashlib.blake2b(f"{seed}/{purpose}/{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class SubsetSampler(Sampler[int]):
    """Yields this rank's share of ``self.subset`` (sorted int64 dataset indices); the full set here."""

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"a sampler needs num_samples >= 1, got {num_samples}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.num_replicas, self.rank = world_info(num_replicas, rank)
        self.epoch = 0
        self._start = 0
        self._shard_cache: torch.Tensor | None = None
        self._subset = torch.arange(self.num_samples, dtype=torch.int64)

    # -- the subset and the epoch order -------------------------------------------------------------
    @property
    def subset(self) -> torch.Tensor:
        return self._subset

    @subset.setter
    def subset(self, value: torch.Tensor) -> None:
        self._subset = torch.sort(value.detach().to("cpu", torch.int64)).values
        self._shard_cache = None

    @property
    def subset_size(self) -> int:
        return self._subset.numel()

    @property
    def per_rank(self) -> int:
        """Samples each rank yields in a full epoch (the padded subset size over ``num_replicas``)."""
        return math.ceil(self.subset_size / self.num_replicas)

    def epoch_order(self, epoch: int | None = None) -> torch.Tensor:
        """The global padded order of ``epoch`` (default: the current one), before sharding."""
        epoch = self.epoch if epoch is None else epoch
        order = self._subset
        if self.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "shuffle", epoch))
            order = order[torch.randperm(order.numel(), generator=gen)]
        pad = self.per_rank * self.num_replicas - order.numel()
        if pad:
            reps = math.ceil(pad / order.numel())
            order = torch.cat([order, order.repeat(reps)[:pad]])
        return order

    def _shard(self) -> torch.Tensor:
        if self._shard_cache is None:
            self._shard_cache = self.epoch_order()[self.rank :: self.num_replicas].clone()
        return self._shard_cache

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self._start :].tolist())

    def __len__(self) -> int:
        return self.per_rank - self._start

    # -- driving the epoch --------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch about to be trained (1-based). Re-setting the current epoch keeps the start."""
        if epoch < 1:
            raise ValueError(f"epochs are 1-based, got set_epoch({epoch})")
        if epoch != self.epoch:
            self.epoch = epoch
            self._start = 0
            self._shard_cache = None

    def set_start(self, position: int) -> None:
        """Skip this rank's first ``position`` samples of the current epoch (mid-epoch resume)."""
        if not 0 <= position <= self.per_rank:
            raise ValueError(f"start position {position} outside [0, {self.per_rank}] for this rank")
        self._start = int(position)

    def record(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        """Per-sample losses of a trained batch; only loss-driven samplers use them."""

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return {"drop": False, "refresh": False, "subset_size": self.subset_size}

    # -- checkpointing ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "num_samples": self.num_samples,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "num_replicas": self.num_replicas,
            "epoch": self.epoch,
            "subset": self._subset.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("type", "num_samples", "seed", "shuffle"):
            mine = type(self).__name__ if key == "type" else getattr(self, key)
            if state[key] != mine:
                raise ValueError(f"sampler state has {key}={state[key]!r}, this sampler has {mine!r}")
        self.epoch = int(state["epoch"])
        self.subset = state["subset"]
        self._start = 0


class UniformSampler(SubsetSampler):
    """Every sample every epoch, reshuffled per epoch: the 100% baseline."""


class FixedSubsetSampler(SubsetSampler):
    """A random ``ceil(fraction * N)`` of the data, drawn once from its own seed (equal-budget control)."""

    def __init__(self, num_samples: int, fraction: float, **kwargs: Any) -> None:
        super().__init__(num_samples, **kwargs)
        if isinstance(fraction, bool) or not 0 < fraction <= 1:
            raise ValueError(f"fixed subset fraction must be in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "fixed_subset"))
        self.subset = select_random(torch.arange(self.num_samples), self.fraction, gen)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fraction": self.fraction}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("fraction") != self.fraction:
            raise ValueError(f"sampler state has fraction={state.get('fraction')!r}, this one {self.fraction!r}")
        super().load_state_dict(state)


class DaRSampler(SubsetSampler):
    """Drop-and-Refresh over recorded training losses, with a global (all-rank) loss table.

    ``record(indices, losses)`` takes each trained batch's dataset indices (the CPU tensor from the
    loader) and per-sample losses (any device, detached), in loader order. It checks that the indices
    are the next ones this sampler yielded and drops the padding positions (the tail of each rank's
    shard), so a padded duplicate is never counted twice and every index keeps the loss from its
    genuine position, exactly as in a single process. The records go into the one loss table
    (:class:`~pretrain.selection.loss_table.LossTable`). ``sync()``, ``end_epoch()`` and ``state_dict()``
    are collective: call them on every rank.
    """

    MODES = ("loss", "random")

    def __init__(
        self, num_samples: int, params: DaRParams | Mapping[str, Any], *, mode: str = "loss", **kwargs: Any
    ) -> None:
        super().__init__(num_samples, **kwargs)
        self.params = params if isinstance(params, DaRParams) else DaRParams(**params)
        if mode not in self.MODES:
            raise ValueError(f"DaR mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self._dar = initial_state(self.params)
        self._losses = LossTable(self.num_samples)
        self._cursor = 0  # samples of this epoch trained on this rank (recorded or skipped by a resume)
        self._ended = True  # "epoch 0" needs no end_epoch
        self._drop_gen = torch.Generator().manual_seed(derive_seed(self.seed, "random_drop"))

    @property
    def loss_table(self) -> torch.Tensor:
        """This epoch's synced losses (float32, NaN = not trained yet); call ``sync()`` first."""
        return self._losses.tables["loss"]

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            if not self._ended:
                raise RuntimeError(
                    f"DaRSampler.set_epoch({epoch}) before end_epoch({self.epoch}): that epoch's drop/refresh would be lost"
                )
            if epoch != self.epoch + 1:
                raise RuntimeError(f"DaRSampler epochs must advance by one: at {self.epoch}, got set_epoch({epoch})")
            self._ended, self._cursor = False, 0
        super().set_epoch(epoch)

    def set_start(self, position: int) -> None:
        if position != self._cursor:
            raise ValueError(
                f"set_start({position}) disagrees with the {self._cursor} samples this DaR sampler has recorded "
                f"in epoch {self.epoch} on rank {self.rank} (checkpoint and trainer state out of step)"
            )
        super().set_start(position)

    def record(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        idx = indices.detach().reshape(-1).to("cpu", torch.int64)
        losses = losses.detach().reshape(-1)
        if losses.numel() != idx.numel():
            raise ValueError(f"record(): {idx.numel()} indices but {losses.numel()} losses")
        expected = self._shard()[self._cursor : self._cursor + idx.numel()]
        if self._ended or not torch.equal(idx, expected):
            raise ValueError(
                f"record(): indices are not the next {idx.numel()} samples this sampler yielded on rank "
                f"{self.rank} (position {self._cursor} of epoch {self.epoch}); record every trained batch "
                "once, in loader order, between set_epoch() and end_epoch()"
            )
        # rank r yields global positions r, r+R, ...; those >= subset size are padding (the shard's tail)
        real = max(0, math.ceil((self.subset_size - self.rank) / self.num_replicas) - self._cursor)
        real = min(real, idx.numel())
        if real:
            self._losses.record(idx[:real], losses[:real])
        self._cursor += idx.numel()

    def sync(self) -> None:
        """Merge every rank's buffered records into the loss table (collective)."""
        self._losses.sync()

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Sync, apply the DaR rule after ``epoch`` and move to the new subset (collective)."""
        if epoch != self.epoch or self._ended:
            raise RuntimeError(f"end_epoch({epoch}) but the epoch in progress is {self.epoch} (ended={self._ended})")
        table = self._losses.collect()["loss"]
        losses = table.numpy().copy()
        self._dar, drop, refresh = dar_transition(self._dar, epoch, self.params)
        if drop:
            if self.mode == "loss":
                self.subset = select_hardest(self._subset, table[self._subset], self.params.keep)
            else:
                self.subset = select_random(self._subset, self.params.keep, self._drop_gen)
        if refresh:
            self.subset = torch.arange(self.num_samples, dtype=torch.int64)
        self._ended = True
        kept = np.zeros(self.num_samples, dtype=bool)
        kept[self._subset.numpy()] = True
        return {"drop": drop, "refresh": refresh, "subset_size": self.subset_size, "losses": losses, "kept": kept}

    def state_dict(self) -> dict[str, Any]:
        """Everything for an exact resume, also mid-epoch (collective: syncs the loss table first)."""
        self.sync()
        cursors = gather_ints(self._cursor)
        if len(set(cursors)) != 1:
            raise RuntimeError(f"ranks are at different positions of the epoch: {cursors}")
        return {
            **super().state_dict(),
            "params": asdict(self.params),
            "mode": self.mode,
            "t_start": self._dar.t_start,
            "t_prev": self._dar.t_prev,
            "ended": self._ended,
            "position": self._cursor,
            "losses": self._losses.state_dict(),
            "drop_generator": self._drop_gen.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mine = asdict(self.params)
        theirs = {**state["params"], "refresh": tuple(state["params"]["refresh"])}
        diff = [f"{k}: {theirs.get(k)!r} vs {v!r}" for k, v in mine.items() if theirs.get(k) != v]
        if diff or state["mode"] != self.mode:
            raise ValueError(f"DaR sampler state is from other settings ({'; '.join(diff) or 'mode'}; checkpoint vs now)")
        if not state["ended"] and state["num_replicas"] != self.num_replicas:
            raise ValueError(
                f"mid-epoch resume needs the same number of ranks: checkpoint {state['num_replicas']}, now {self.num_replicas}"
            )
        super().load_state_dict(state)
        self._dar = DaRState(t_start=int(state["t_start"]), t_prev=int(state["t_prev"]))
        self._ended = bool(state["ended"])
        self._cursor = int(state["position"])
        self._start = 0 if self._ended else self._cursor  # an ended epoch restarts at the next set_epoch
        self._losses.load_state_dict(table_state(state, "losses", "loss_table", self._losses.columns))
        self._drop_gen.set_state(state["drop_generator"])
