"""What the trainer trains on: one pass of a subset sampler per epoch, or a stream of pools, one per step.

A method chooses its feed (``SelectionMethod.build_feed``). Both read the same dataset
(``(image, target, index)`` items) through DataLoaders whose random draws come from explicit
generators, so a resume in the middle of an epoch continues the same batches.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Protocol

import torch
from torch.utils.data import BatchSampler, DataLoader

from .data import collate_indexed
from .selection.samplers import derive_seed


class FoldTailBatchSampler(BatchSampler):
    """Batches of ``batch_size``; a last batch of a single sample joins the one before it.

    BatchNorm cannot train on one sample, and dropping it would leave it untrained (and its loss
    unrecorded) for the epoch; every other batch keeps its size, so mid-epoch positions stay ``step * b``.
    """

    def __iter__(self):
        batches = super().__iter__()
        prev = next(batches, None)
        for batch in batches:
            if len(batch) == 1:
                batch, prev = prev + batch, None
            if prev is not None:
                yield prev
            prev = batch
        if prev is not None:
            yield prev

    def __len__(self) -> int:
        return fold_tail_batches(len(self.sampler), self.batch_size)


def fold_tail_batches(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size) - (1 if n > 1 and n % batch_size == 1 else 0)


def loader(dataset, batch_size: int, sampler, workers: int, seed: int, drop_last: bool = False) -> DataLoader:
    # an explicit generator: creating the iterator must not draw from the global RNG (exact resume)
    common = dict(num_workers=workers, pin_memory=torch.cuda.is_available(), collate_fn=collate_indexed,
                  generator=torch.Generator().manual_seed(seed))
    if sampler is None or drop_last:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **common)
    return DataLoader(dataset, batch_sampler=FoldTailBatchSampler(sampler, batch_size, False), **common)


class Feed(Protocol):
    """Batches of ``(images, targets, indices)`` for the trainer, epoch by epoch (checkpointed state)."""

    def steps_in_epoch(self) -> int:
        """Steps of the epoch last begun (or about to begin)."""

    def begin(self, epoch: int, step: int = 0) -> Iterator:
        """Iterator over epoch ``epoch``'s batches from step ``step`` on (a mid-epoch resume)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class SamplerFeed:
    """One pass of a subset sampler per epoch, in batches of ``batch_size`` (the last one folded)."""

    def __init__(self, dataset, sampler, batch_size: int, workers: int, seed: int):
        self.dataset, self.sampler, self.b, self.workers, self.seed = dataset, sampler, batch_size, workers, seed

    def steps_in_epoch(self) -> int:
        return fold_tail_batches(self.sampler.per_rank, self.b)

    def begin(self, epoch: int, step: int = 0):
        """Iterator over epoch ``epoch``'s batches of ``(images, targets, indices)`` from step ``step`` on."""
        self.sampler.set_epoch(epoch)
        self.sampler.set_start(step * self.b)  # every batch before the last is full
        self.dataset.set_epoch(epoch)
        return iter(loader(self.dataset, self.b, self.sampler, self.workers, derive_seed(self.seed, "loader", epoch)))

    def state_dict(self) -> dict:
        return {}  # the sampler belongs to the method, which checkpoints it

    def load_state_dict(self, state: dict) -> None:
        pass


class PoolFeed:
    """Pools of ``pool_size`` per step, ``steps`` per epoch, cut from endless reshuffled passes over all data.

    Each pass is one epoch order of ``sampler`` (every sample once, sharded); an epoch of steps does not
    follow the passes, so the stream position is checkpointed.
    """

    def __init__(self, dataset, sampler, pool_size: int, steps: int, workers: int, seed: int):
        self.dataset, self.sampler, self.pool, self.steps = dataset, sampler, pool_size, steps
        self.workers, self.seed = workers, seed
        self.stream = {"pass": 1, "position": 0}  # where in the reshuffled passes the next pool starts

    def steps_in_epoch(self) -> int:
        return self.steps

    def begin(self, epoch: int, step: int = 0):
        return itertools.islice(self._pools(), self.steps - step)

    def _pools(self):
        while True:
            self.sampler.set_epoch(self.stream["pass"])
            self.sampler.set_start(self.stream["position"])
            self.dataset.set_epoch(self.stream["pass"])
            seed = derive_seed(self.seed, "loader", self.stream["pass"])
            for batch in loader(self.dataset, self.pool, self.sampler, self.workers, seed, drop_last=True):
                self.stream["position"] += self.pool
                yield batch
            self.stream = {"pass": self.stream["pass"] + 1, "position": 0}

    def state_dict(self) -> dict:
        return {"stream": dict(self.stream)}

    def load_state_dict(self, state: dict) -> None:
        self.stream = dict(state["stream"])
