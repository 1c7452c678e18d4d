"""Samplers: epoch order, sharding and padding, the methods that build them, record() checks and exact resume."""

import io

import pytest
import torch

from pretrain.errors import ConfigError
from pretrain.methods import build_method
from pretrain.methods.base import RunInfo
from pretrain.selection.dar import DaRParams
from pretrain.selection.samplers import (
    DaRSampler,
    FixedSubsetSampler,
    SubsetSampler,
    UniformSampler,
)

PARAMS = DaRParams(warmup=1, interval=1, keep=0.7, epochs=6, refresh=(4,))


def loss_of(indices: torch.Tensor, epoch: int) -> torch.Tensor:
    return torch.cos(indices.double() * 0.37 * epoch + epoch).float()


def train_epoch(sampler, epoch, batch=5, stop_after=None):
    """Iterate like a DataLoader, record each batch; optionally stop after ``stop_after`` batches."""
    order = list(sampler)
    for b, start in enumerate(range(0, len(order), batch)):
        if stop_after is not None and b == stop_after:
            return order[:start]
        idx = torch.tensor(order[start : start + batch])
        sampler.record(idx, loss_of(idx, epoch))
    return order


def roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("n, replicas", [(10, 1), (10, 3), (7, 2), (2, 5)])
def test_shards_pad_like_distributed_sampler(n, replicas):
    samplers = [UniformSampler(n, seed=5, num_replicas=replicas, rank=r) for r in range(replicas)]
    for s in samplers:
        s.set_epoch(3)
    order = samplers[0].epoch_order()
    per_rank = -(-n // replicas)
    assert order.numel() == per_rank * replicas
    assert sorted(order[:n].tolist()) == list(range(n))  # the genuine part is a permutation
    # padding repeats the head of the permutation, as torch's DistributedSampler does
    assert order[n:].tolist() == (order[:n].tolist() * replicas)[: per_rank * replicas - n]
    for r, s in enumerate(samplers):
        assert list(s) == order[r::replicas].tolist() and len(s) == per_rank


def test_order_is_seeded_per_epoch_and_identical_across_instances():
    a, b, c = UniformSampler(50, seed=1), UniformSampler(50, seed=1), UniformSampler(50, seed=2)
    for s in (a, b, c):
        s.set_epoch(1)
    first = list(a)
    assert first == list(b) and first != list(c) and sorted(first) == list(range(50))
    a.set_epoch(2)
    assert list(a) != first
    unshuffled = SubsetSampler(6, shuffle=False)
    unshuffled.set_epoch(1)
    assert list(unshuffled) == list(range(6))


def test_set_start_skips_this_ranks_head():
    s = UniformSampler(11, seed=0, num_replicas=2, rank=1)
    s.set_epoch(1)
    full = list(s)
    s.set_start(4)
    assert list(s) == full[4:] and len(s) == len(full) - 4
    s.set_epoch(1)  # re-setting the current epoch keeps the start (resume order: load, set_epoch, set_start)
    assert len(s) == len(full) - 4
    s.set_epoch(2)
    assert len(s) == len(full)
    with pytest.raises(ValueError, match="start position"):
        s.set_start(7)


def test_fixed_subset():
    s = FixedSubsetSampler(101, 0.3, seed=4)
    assert s.subset_size == 31 and s.end_epoch(1)["subset_size"] == 31
    s.set_epoch(1)
    e1 = sorted(s)
    s.set_epoch(2)
    assert sorted(s) == e1 == s.subset.tolist()
    assert not torch.equal(FixedSubsetSampler(101, 0.3, seed=5).subset, s.subset)
    with pytest.raises(ValueError, match="fraction"):
        FixedSubsetSampler(10, 0.0)


def build_sampler(method: dict, num_samples: int, epochs: int = 6):
    """The sampler a registered method trains with (what its feed iterates)."""
    m = build_method(method, RunInfo(num_samples, epochs))
    m.build_feed(None, 0)
    return m.sampler


def test_methods_build_their_samplers():
    assert type(build_sampler({"type": "uniform"}, 8)) is UniformSampler
    assert type(build_sampler({"type": "shortened", "budget": 0.5}, 8)) is UniformSampler
    assert build_sampler({"type": "fixed_subset", "budget": 0.5}, 8).subset_size == 4
    dar = build_sampler({"type": "dar", "warmup": 1, "interval": 1, "keep": 0.7, "refresh": [4]}, 8)
    rnd = build_sampler({"type": "dar_random", "warmup": 0, "interval": 2, "keep": 0.5}, 8, epochs=4)
    assert (dar.mode, rnd.mode, rnd.params.interval, dar.params) == ("loss", "random", 2, PARAMS)
    with pytest.raises(ConfigError, match="method.type must be one of .*, got 'dap' \\(did you mean dar\\?\\)"):
        build_sampler({"type": "dap"}, 8)
    with pytest.raises(ValueError, match="mode"):
        DaRSampler(8, PARAMS, mode="hard")


def test_record_rejects_out_of_order_and_drops_padding():
    # N=5 on 2 ranks: global order o0..o4 + [o0]; rank 1 yields positions 1, 3, 5 (5 is padding)
    s = DaRSampler(5, PARAMS, seed=2, num_replicas=2, rank=1)
    s.set_epoch(1)
    mine = torch.tensor(list(s))
    with pytest.raises(ValueError, match="not the next"):
        s.record(mine[1:], torch.zeros(2))
    s.record(mine[:2], torch.tensor([1.0, 2.0]))
    s.record(mine[2:], torch.tensor([99.0]))  # the padded duplicate's loss must not reach the table
    s.sync()
    table = s.loss_table
    assert torch.isnan(table).sum() == 3 and sorted(table[~torch.isnan(table)].tolist()) == [1.0, 2.0]
    with pytest.raises(ValueError, match="not the next"):
        s.record(mine[:1], torch.zeros(1))  # past the end of the shard


def test_dar_enforces_epoch_protocol():
    s = DaRSampler(9, PARAMS)
    s.set_epoch(1)
    train_epoch(s, 1)
    with pytest.raises(RuntimeError, match="end_epoch"):
        s.set_epoch(2)
    s.end_epoch(1)
    with pytest.raises(RuntimeError, match="advance by one"):
        s.set_epoch(3)


def uninterrupted(sampler_factory, epochs):
    s = sampler_factory()
    history = []
    for epoch in range(1, epochs + 1):
        s.set_epoch(epoch)
        order = train_epoch(s, epoch)
        out = s.end_epoch(epoch)
        history.append((order, s.subset.tolist(), out.get("losses")))
    return history


@pytest.mark.parametrize("mode", ["loss", "random"])
def test_dar_resume_mid_epoch_is_exact(mode):
    n, epochs, kill_epoch = 37, PARAMS.epochs, 3
    factory = lambda: DaRSampler(n, PARAMS, mode=mode, seed=11)  # noqa: E731
    reference = uninterrupted(factory, epochs)

    first = factory()
    for epoch in range(1, kill_epoch):
        first.set_epoch(epoch)
        train_epoch(first, epoch)
        first.end_epoch(epoch)
    first.set_epoch(kill_epoch)
    done = train_epoch(first, kill_epoch, stop_after=3)  # "killed" after 3 batches
    state = roundtrip(first.state_dict())
    del first

    second = factory()
    second.load_state_dict(state)
    second.set_epoch(kill_epoch)
    second.set_start(len(done))
    rest = list(second)
    assert done + rest == reference[kill_epoch - 1][0]  # same remaining order
    for b in range(0, len(rest), 5):
        idx = torch.tensor(rest[b : b + 5])
        second.record(idx, loss_of(idx, kill_epoch))
    out = second.end_epoch(kill_epoch)
    history = [(None, second.subset.tolist(), out["losses"])]
    for epoch in range(kill_epoch + 1, epochs + 1):
        second.set_epoch(epoch)
        order = train_epoch(second, epoch)
        out = second.end_epoch(epoch)
        history.append((order, second.subset.tolist(), out["losses"]))
    for got, want in zip(history, reference[kill_epoch - 1 :], strict=True):
        assert got[1] == want[1]  # same subsets
        assert (got[2] == want[2]).sum() + (got[2] != got[2]).sum() == n  # same tables (NaN == NaN)
        assert ((got[2] != got[2]) == (want[2] != want[2])).all()
    assert len({len(h[1]) for h in reference}) > 1  # the schedule really changed the subset


def test_dar_resume_checks():
    s = DaRSampler(12, PARAMS)
    s.set_epoch(1)
    train_epoch(s, 1, stop_after=1)
    state = s.state_dict()
    other = DaRSampler(12, DaRParams(warmup=1, interval=2, keep=0.7, epochs=6, refresh=(4,)))
    with pytest.raises(ValueError, match="interval: 2 vs 1|interval: 1 vs 2"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="num_samples"):
        DaRSampler(13, PARAMS).load_state_dict(state)
    with pytest.raises(ValueError, match="same number of ranks"):
        DaRSampler(12, PARAMS, num_replicas=2, rank=0).load_state_dict(state)
    fresh = DaRSampler(12, PARAMS)
    fresh.load_state_dict(state)
    fresh.set_epoch(1)
    with pytest.raises(ValueError, match="disagrees"):
        fresh.set_start(0)
    with pytest.raises(ValueError, match="type"):
        UniformSampler(12).load_state_dict(state)


def test_uniform_resume_by_position():
    a = UniformSampler(20, seed=3)
    a.set_epoch(2)
    full = list(a)
    b = UniformSampler(20, seed=3)
    b.load_state_dict(roundtrip(a.state_dict()))
    b.set_epoch(2)
    b.set_start(6)
    assert list(b) == full[6:]


def test_dar_resume_at_epoch_boundary():
    factory = lambda: DaRSampler(29, PARAMS, seed=4)  # noqa: E731
    reference = uninterrupted(factory, PARAMS.epochs)
    first = factory()
    for epoch in (1, 2):
        first.set_epoch(epoch)
        train_epoch(first, epoch)
        first.end_epoch(epoch)
    second = factory()
    second.load_state_dict(roundtrip(first.state_dict()))
    assert second.subset.tolist() == reference[1][1]
    for epoch in range(3, PARAMS.epochs + 1):
        second.set_epoch(epoch)
        assert len(second) == second.subset_size
        assert train_epoch(second, epoch) == reference[epoch - 1][0]
        second.end_epoch(epoch)
        assert second.subset.tolist() == reference[epoch - 1][1]


class IndexDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 30

    def __getitem__(self, i):
        return torch.tensor([float(i)]), i


def test_dar_in_a_dataloader_with_drop_last_keeps_the_untrained():
    # p=0.5 drop after epoch 1; drop_last leaves 30 % 8 = 6 samples untrained (NaN = unknown -> kept)
    sampler = DaRSampler(30, DaRParams(warmup=0, interval=1, keep=0.5, epochs=2), seed=0)
    loader = torch.utils.data.DataLoader(IndexDataset(), batch_size=8, sampler=sampler, drop_last=True)
    sampler.set_epoch(1)
    trained = []
    for x, idx in loader:
        sampler.record(idx, x[:, 0])  # loss = index: the largest indices are the hardest
        trained += idx.tolist()
    out = sampler.end_epoch(1)
    untrained = sorted(set(range(30)) - set(trained))
    assert len(untrained) == 6 and torch.isnan(torch.from_numpy(out["losses"][untrained])).all()
    hardest_trained = sorted(trained)[-(15 - 6) :]
    assert sampler.subset.tolist() == sorted(untrained + hardest_trained)
