"""Two real gloo ranks: record gathering, one global DaR subset on every rank, equal to one process.

This file is also the worker script (``gloo_ranks``: it is started once per rank).
"""

import math
from pathlib import Path

import torch
from helpers import gloo_ranks

from pretrain.selection.dar import DaRParams
from pretrain.selection.samplers import DaRSampler

N = 23  # not divisible by the world size: the samplers pad
WORLD = 2
SEED = 5
PARAMS = DaRParams(warmup=1, interval=1, keep=0.6, epochs=5, refresh=(4,))
KILL_EPOCH, KILL_BATCHES, BATCH = 3, 2, 3
BIG = 2**53 + 1  # not representable in float64: indices must travel as int64


def loss_of(indices: torch.Tensor, epoch: int) -> torch.Tensor:
    return torch.sin(indices.double() * 1.3 + epoch).float()


def train(sampler, epoch, rank, world, start=0, stop_after=None):
    """Train (record) this rank's samples; a padded position gets a different loss (another augmentation)."""
    order = list(sampler)
    for b, lo in enumerate(range(0, len(order), BATCH)):
        if stop_after is not None and b == stop_after:
            return lo
        idx = torch.tensor(order[lo : lo + BATCH])
        global_pos = rank + world * (start + lo + torch.arange(idx.numel()))
        padded = global_pos >= sampler.subset_size
        sampler.record(idx, loss_of(idx, epoch) + 100.0 * padded)
    return len(order)


def rank_job(world: int, rank: int, out: Path) -> dict:
    """One rank's gathers and DaR epochs, with a checkpoint and resume inside epoch ``KILL_EPOCH``."""
    import torch.distributed as dist

    from pretrain.selection.distributed import gather_records

    results = {}
    k = torch.arange(rank + 2)  # ranks hold different numbers of records
    results["gather"] = gather_records(BIG + 10 * rank + k, 0.5 * k)

    sampler = DaRSampler(N, PARAMS, seed=SEED)
    control = DaRSampler(N, PARAMS, mode="random", seed=SEED)
    epochs = []
    for epoch in range(1, PARAMS.epochs + 1):
        sampler.set_epoch(epoch)
        control.set_epoch(epoch)
        train(control, epoch, rank, world)
        if epoch == KILL_EPOCH:  # checkpoint mid-epoch (collective), "die", resume from rank 0's file
            done = train(sampler, epoch, rank, world, stop_after=KILL_BATCHES)
            state = sampler.state_dict()
            ckpt = Path(out) / "ckpt.pth"
            if rank == 0:
                torch.save(state, ckpt)
            dist.barrier()
            sampler = DaRSampler(N, PARAMS, seed=SEED)
            sampler.load_state_dict(torch.load(ckpt, weights_only=True))
            sampler.set_epoch(epoch)
            sampler.set_start(done)
            train(sampler, epoch, rank, world, start=done)
        else:
            train(sampler, epoch, rank, world)
        res = sampler.end_epoch(epoch)
        epochs.append({**res, "subset": sampler.subset.tolist(), "control": control.end_epoch(epoch)["kept"]})
    results["epochs"] = epochs
    return results


def single_process_reference():
    sampler, epochs = DaRSampler(N, PARAMS, seed=SEED, num_replicas=1, rank=0), []
    for epoch in range(1, PARAMS.epochs + 1):
        sampler.set_epoch(epoch)
        train(sampler, epoch, rank=0, world=1)
        res = sampler.end_epoch(epoch)
        epochs.append({**res, "subset": sampler.subset.tolist()})
    return epochs


def same_table(a, b) -> bool:
    return bool(((a == b) | (a != a) & (b != b)).all())


def test_two_gloo_ranks_agree_with_one_process(tmp_path):
    ranks = gloo_ranks.run_ranks(__file__, tmp_path, world=WORLD)

    for got in ranks:  # variable sizes gathered in rank order, int64 exact
        idx, loss = got["gather"]
        assert idx.dtype == torch.int64 and idx.tolist() == [BIG, BIG + 1, BIG + 10, BIG + 11, BIG + 12]
        assert loss.tolist() == [0.0, 0.5, 0.0, 0.5, 1.0]

    reference = single_process_reference()
    sizes = [e["subset_size"] for e in reference]
    assert sizes == [N, math.ceil(0.6 * N), math.ceil(0.6 * math.ceil(0.6 * N)), N, math.ceil(0.6 * N)]
    for epoch, want in enumerate(reference, start=1):
        a, b = (r["epochs"][epoch - 1] for r in ranks)
        assert a["subset"] == b["subset"] == want["subset"], epoch
        assert (a["drop"], a["refresh"]) == (want["drop"], want["refresh"])
        # padded duplicates (recorded with +100) never reach the table: equal to the unpadded run
        assert same_table(a["losses"], want["losses"]) and same_table(b["losses"], want["losses"]), epoch
        assert (a["kept"] == b["kept"]).all() and (a["control"] == b["control"]).all()
        assert int(a["control"].sum()) == want["subset_size"]


def test_without_process_group_gather_is_identity_and_scatter_keeps_first():
    from pretrain.selection.distributed import gather_records, scatter_into_table

    idx, loss = gather_records(torch.tensor([3, 1]), torch.tensor([0.5, 0.25], dtype=torch.float64))
    assert idx.tolist() == [3, 1] and loss.dtype == torch.float32 and loss.tolist() == [0.5, 0.25]
    table = torch.full((5,), float("nan"))
    table[4] = 7.0
    scatter_into_table(table, torch.tensor([2, 0, 2, 4]), torch.tensor([1.0, 2.0, 3.0, 9.0]))
    assert same_table(table, torch.tensor([2.0, float("nan"), 1.0, float("nan"), 7.0]))


if __name__ == "__main__":
    gloo_ranks.serve(rank_job)
