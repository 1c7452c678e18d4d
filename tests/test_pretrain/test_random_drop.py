"""random_drop: the random-drop control -- sizes per epoch, fresh uniform draws, determinism, bad params."""
from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from pretrain.errors import ConfigError
from pretrain.methods import build_method
from pretrain.methods.base import RunInfo


def method(cfg, n=50, epochs=4, seed=0):
    m = build_method({"type": "random_drop", **cfg}, RunInfo(num_samples=n, epochs=epochs, seed=seed))
    m.build_feed(None, 0)
    return m


def subsets(m):
    out = [m.sampler.subset.clone()]
    for epoch in range(1, m.run.epochs):
        m.end_epoch(epoch)
        out.append(m.sampler.subset.clone())
    return out


def test_sizes_follow_budget_or_fractions():
    assert method({"budget": 0.7}).plan().sizes == (35,) * 4
    m = method({"fractions": [1.0, 0.5, 0.33, 0.9]})
    # ceil(f N) in exact decimals: 0.33 * 50 = 16.5 -> 17
    assert m.plan().sizes == (50, 25, 17, 45) and m.plan().relative_cost == pytest.approx(137 / 200)
    assert [s.numel() for s in subsets(m)] == [50, 25, 17, 45]


def test_each_epoch_draws_afresh_and_uniformly():
    m = method({"budget": 0.2}, n=10, epochs=400, seed=3)
    got = subsets(m)
    assert all(torch.equal(s, s.sort().values) and s.unique().numel() == 2 for s in got)
    assert len({tuple(s.tolist()) for s in got}) > 30  # not one fixed subset
    counts = torch.bincount(torch.cat(got), minlength=10).numpy()
    assert chisquare(counts).pvalue > 1e-3  # every sample equally likely
    assert chisquare([160] + [80] * 9).pvalue < 1e-6  # a biased draw would be rejected
    # a function of (seed, epoch): the same run again, and what a resumed run would draw
    again = subsets(method({"budget": 0.2}, n=10, epochs=400, seed=3))
    assert all(torch.equal(a, b) for a, b in zip(got, again, strict=True))
    assert torch.equal(m.draw(7), got[6])


@pytest.mark.parametrize("cfg, message", [
    ({}, "exactly one of method.budget"),
    ({"budget": 0.5, "fractions": [1.0] * 4}, "exactly one"),
    ({"budget": 0.0}, r"budget must be a fraction in \(0, 1\]"),
    ({"fractions": [1.0, 1.2, 0.5, 0.5]}, "fractions must be fractions"),
    ({"fractions": [1.0, 0.5]}, r"one fraction per epoch \(4\), got 2"),
    ({"budgt": 0.5}, "did you mean budget"),
])
def test_bad_params(cfg, message):
    with pytest.raises(ConfigError, match=message):
        method(cfg)
