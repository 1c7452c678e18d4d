"""Plots from work dirs in the shared formats: loss split of a DaR drop event, and every PNG drawn."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from transfer.study.plots import draw_all, loss_split
from transfer.study.results import TransferRun, load_pretrain_run


def write_run(root: Path, name: str, method: str, cost: float, kept_fracs: list[float], events: dict) -> Path:
    d = root / name
    (d / "selection").mkdir(parents=True)
    with open(d / "log.jsonl", "w") as f:
        for e, k in enumerate(kept_fracs, 1):
            f.write(json.dumps({"type": "epoch", "epoch": e, "kept_fraction": k, "trained_samples": int(10 * k),
                                "dataset_size": 10}) + "\n")
        f.write(json.dumps({"type": "summary", "method": method, "arch": "resnet18", "epochs": len(kept_fracs),
                            "relative_cost_samples": cost, "relative_cost_flops": cost, "top1": 90.0,
                            "top5": 99.0}) + "\n")
    for epoch, (losses, kept) in events.items():
        np.savez(d / "selection" / f"epoch_{epoch:03d}.npz", losses=np.asarray(losses, np.float32),
                 kept=np.asarray(kept, bool))
    return d


def test_loss_split_ignores_samples_not_trained_that_epoch(tmp_path):
    losses = [0.1, np.nan, 2.0, 0.0, 5.0, np.nan]
    kept = [False, True, True, False, True, False]  # a NaN sample may be in the new subset, untrained
    d = write_run(tmp_path, "dar", "dar", 0.7, [1.0, 0.5], {2: (losses, kept)})
    k, dropped = loss_split(d / "selection" / "epoch_002.npz")
    assert sorted(k.tolist()) == [2.0, 5.0]
    assert sorted(dropped.tolist()) == [0.0, pytest.approx(0.1)]


def test_draw_all_writes_every_plot_that_has_data(tmp_path):
    rng = np.random.default_rng(0)
    events = {e: (rng.exponential(size=50), rng.random(50) < 0.6) for e in (2, 3, 4)}
    runs = [load_pretrain_run(write_run(tmp_path, "dar_s0", "dar", 0.7, [1, 1, 0.6, 0.36], events)),
            load_pretrain_run(write_run(tmp_path, "uniform_s0", "uniform", 1.0, [1, 1, 1, 1], {}))]
    tra = [TransferRun(tmp_path / "t", "seg", "configs/transfer/pspnet_r18b-d8_tiny.py", {"mIoU": m},
                       {"arch": "resnet18", "method": meth, "relative_cost_samples": c})
           for meth, c, m in (("uniform", 1.0, 30.0), ("dar", 0.7, 31.0))]
    plots = draw_all(runs, tra, tmp_path / "plots")
    assert set(plots) == {"kept_fraction", "accuracy_vs_cost", "dar_losses_dar_s0"}
    for p in plots.values():
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000
    assert draw_all([], [], tmp_path / "none") == {}
