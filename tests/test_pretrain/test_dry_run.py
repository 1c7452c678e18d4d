"""Dry-runs take no time: no method's ``plan()`` iterates over steps, so its work does not grow with the
number of steps per epoch (ImageNet's 5005, or 600k steps in all), and Selective Backprop's closed-form
plan equals the per-step rule it replaces."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from pretrain.cli import get_args_parser, load_config
from pretrain.config import build_config
from pretrain.plan import make_plan

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs" / "pretrain").glob("*.py"))


def python_calls(fn) -> int:
    """How many Python function calls ``fn()`` makes (a step loop in a plan makes thousands)."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        count += event == "call"

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_plan_work_does_not_grow_with_steps_per_epoch(path):
    typed = build_config(load_config(get_args_parser().parse_args([str(path)])), path.name)
    b = typed.data.batch_size

    def plan(steps_per_epoch: int):
        return lambda: make_plan(typed.method, typed.schedule.epochs, b * steps_per_epoch + 1, batch_size=b,
                                 img_size=typed.data.img_size, seed=typed.seed)

    few, many = python_calls(plan(10)), python_calls(plan(10_000))
    # equal up to a branch or two (a last batch of another size); a loop over steps would add >= 10^4 calls
    assert many <= few + few // 10 + 20, (few, many)


def test_selective_backprop_plan_calls_no_per_step_rule(monkeypatch):
    import pretrain.methods.selective_backprop as adapter
    import pretrain.selection.selective_backprop as rule
    from pretrain.methods import build_method
    from pretrain.methods.base import RunInfo

    calls = []
    for module in (rule, adapter):
        monkeypatch.setattr(module, "selects", lambda *a, _f=rule.selects: calls.append(a) or _f(*a))
    for n in (10 * 32, 10_000 * 32):
        build_method({"type": "selective_backprop"}, RunInfo(num_samples=n, epochs=120, batch_size=32)).plan()
    assert calls == []


def brute_force_sizes(n: int, epochs: int, batch: int, world: int, cfg: dict) -> tuple[list[int], int]:
    """Per epoch the samples trained and in all the samples scored, from ``selects`` step by step."""
    from pretrain.feed import fold_tail_batches
    from pretrain.selection.selective_backprop import SelectiveBackpropParams, kept_count, selects

    p = SelectiveBackpropParams(**{k: v for k, v in cfg.items() if k != "type"})
    per_rank = -(-n // world)
    steps = fold_tail_batches(per_rank, batch)
    sizes = [batch] * (steps - 1) + [per_rank - batch * (steps - 1)]
    trained, scored = [], 0
    for e in range(epochs):
        dropped = 0
        for s, m in enumerate(sizes):
            k = kept_count(m, p.keep)
            if selects(e * steps + s, epochs * steps, s, p) and k >= 2:
                dropped, scored = dropped + m - k, scored + world * m
        trained.append(n - world * dropped)
    return trained, scored


@pytest.mark.parametrize("n, epochs, batch, world", [(100, 4, 10, 1), (103, 5, 10, 1), (101, 3, 10, 1), (57, 7, 4, 2),
                                                    (10, 3, 32, 1), (64, 6, 8, 3)])
def test_selective_backprop_closed_form_plan_equals_the_per_step_rule(n, epochs, batch, world):
    from pretrain.methods import build_method
    from pretrain.methods.base import RunInfo

    grid = itertools.product([(0.0, 1.0), (0.5, 0.9), (0.3, 0.7), (0.15, 0.85)], [0.5, 0.29, 0.75, 1.0],
                             [0, 1, 2, 3])
    for (start, end), keep, interrupt in grid:
        cfg = dict(type="selective_backprop", start=start, end=end, keep=keep, scale_factor=0.5, interrupt=interrupt)
        plan = build_method(cfg, RunInfo(num_samples=n, epochs=epochs, batch_size=batch, img_size=32,
                                         world_size=world)).plan()
        trained, scored = brute_force_sizes(n, epochs, batch, world, cfg)
        assert list(plan.sizes) == trained, cfg
        assert plan.flops_cost == pytest.approx((sum(trained) + scored * 0.25 / 3) / (epochs * n)), cfg
