"""The trainer: a real tiny run of every method, the log contract, and the LR schedule."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from pretrain.config import ScheduleConfig
from pretrain.plan import Plan, make_plan
from pretrain.selection.dar import select_hardest
from pretrain.trainer import build_scheduler

TINY_METHODS = ("uniform", "dar", "dar_random", "fixed_subset", "shortened", "online")
CHANCE = 10.0  # digits: 10 balanced classes
EPOCH_KEYS = {"type": str, "epoch": int, "trained_samples": int, "dataset_size": int, "kept_fraction": float,
              "train_flops": float, "selection_flops": float, "wall_s": float, "train_loss": float, "lr": float}
SUMMARY_KEYS = {"type": str, "method": str, "arch": str, "epochs": int, "relative_cost_samples": float,
                "relative_cost_flops": float, "top1": float, "top5": float, "wall_s": float}


@pytest.mark.slow
@pytest.mark.parametrize("method", TINY_METHODS)
def test_tiny_run_learns_and_logs_the_contract(method, tiny):
    work_dir = tiny.finished(method)
    log = tiny.log(work_dir)
    epochs, summary = log[:-1], log[-1]
    assert summary["type"] == "summary" and summary["method"] == method
    for line in epochs:
        assert {k: type(line[k]) for k in EPOCH_KEYS} == EPOCH_KEYS, line
        assert isinstance(line["top1"], float) and isinstance(line["top5"], float)
    assert {k: type(summary[k]) for k in SUMMARY_KEYS} == SUMMARY_KEYS
    assert [e["epoch"] for e in epochs] == list(range(1, summary["epochs"] + 1))
    # learned something real: well above chance on held-out digits, and the training loss fell
    assert summary["top1"] > 2 * CHANCE, summary
    assert epochs[-1]["train_loss"] < 0.6 * epochs[0]["train_loss"]
    # the accounting is the plan's
    n = epochs[0]["dataset_size"]
    plan = make_plan(_method(work_dir), 6, n, batch_size=32, img_size=32)
    if method != "online":
        assert [e["trained_samples"] for e in epochs] == list(plan.sizes)
        assert summary["relative_cost_samples"] == pytest.approx(plan.relative_cost)
        assert summary["relative_cost_flops"] == pytest.approx(plan.relative_cost)
    else:  # same steps as uniform (43 per epoch of b=32), plus the scoring forwards
        assert all(e["trained_samples"] == 43 * 32 for e in epochs)
        assert sum(e["selection_flops"] for e in epochs) > 0
        assert summary["relative_cost_flops"] > summary["relative_cost_samples"] >= 1.0
    # backbone.pth: timm-named weights that load into the timm model, plus the meta block
    backbone = torch.load(work_dir / "backbone.pth", map_location="cpu", weights_only=False)
    timm.create_model("test_resnet", num_classes=10).load_state_dict(backbone["state_dict"])
    assert backbone["meta"]["method"] == method and backbone["meta"]["arch"] == "test_resnet"
    assert backbone["meta"]["top1"] == summary["top1"]
    assert (work_dir / "config.py").is_file() and (work_dir / "git_rev.txt").read_text().strip()
    last = (work_dir / "last_checkpoint").read_text().strip()
    assert last.endswith(f"epoch_{summary['epochs']}.pth")


def _method(work_dir) -> dict:
    from mmengine.config import Config

    return Config.fromfile(str(work_dir / "config.py")).method.to_dict()


@pytest.mark.slow
def test_dar_selection_files_follow_the_rule(tiny):
    """Each drop's npz: losses exactly on the subset trained that epoch, kept = its hardest ceil(p*n)."""
    work_dir = tiny.finished("dar")
    log = tiny.log(work_dir)
    n = log[0]["dataset_size"]
    subset = np.arange(n)
    files = sorted((work_dir / "selection").glob("epoch_*.npz"))
    assert [f.name for f in files] == [f"epoch_{e:03d}.npz" for e in (2, 3, 4, 5, 6)]  # W=1, I=1, R=[4]
    for f in files:
        epoch = int(f.stem.split("_")[1])
        z = np.load(f)
        assert z["losses"].dtype == np.float32 and z["kept"].dtype == bool and z["losses"].shape == (n,)
        trained = np.flatnonzero(~np.isnan(z["losses"]))
        np.testing.assert_array_equal(trained, subset)  # every trained sample recorded once, nothing else
        assert len(trained) == log[epoch - 1]["trained_samples"]
        if epoch == 4:  # refresh: the full set comes back
            assert z["kept"].all()
        else:
            expect = select_hardest(torch.from_numpy(subset), torch.from_numpy(z["losses"][subset]), 0.6)
            np.testing.assert_array_equal(np.flatnonzero(z["kept"]), expect.numpy())
        subset = np.flatnonzero(z["kept"])


@pytest.mark.slow
def test_dar_bookkeeping_does_not_change_training(tiny):
    """Recording losses is side-effect free: on the full-set epochs before the first drop, DaR trains
    exactly what uniform trains (same seed), so the first two epochs agree to the bit."""
    uniform, dar = tiny.log(tiny.finished("uniform")), tiny.log(tiny.finished("dar"))
    for e in (0, 1):
        assert dar[e]["train_loss"] == uniform[e]["train_loss"]
        assert dar[e]["top1"] == uniform[e]["top1"]


def _lrs(schedule: dict, plan: Plan, ts: list[float]) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(opt, ScheduleConfig(epochs=plan.ref_epochs, **schedule), plan)
    out = []
    for t in ts:
        sched.step(t)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_step_schedule_decays_after_whole_epochs():
    plan = make_plan({"type": "uniform"}, 120, 1000)
    lrs = _lrs({"sched": "step", "milestones": [30, 60, 90]}, plan, [0, 29.99, 30.0, 59.99, 60.0, 90.0, 119.9])
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.0001, 0.0001])


def test_dar_epochs_shrink_but_milestones_stay_on_epochs():
    """Milestones are epochs of training, not fractions of planned samples: DaR's short epochs move nothing."""
    plan = make_plan({"type": "dar", "warmup": 10, "interval": 2, "keep": 0.9, "active": 10,
                      "refresh": [30, 60, 90]}, 120, 1000)
    assert plan.sizes[29] < 1000  # epoch 30 is a shrunken epoch
    lrs = _lrs({"sched": "step", "milestones": [30, 60, 90]}, plan, [29.99, 30.0])
    assert lrs == pytest.approx([0.1, 0.01])


def test_shortened_schedule_scales_milestones_and_warmup_is_linear():
    plan = make_plan({"type": "shortened", "budget": 0.5}, 120, 1000)
    assert plan.epochs == 60 and plan.ref_epochs == 120
    lrs = _lrs({"sched": "step", "milestones": [30, 60, 90]}, plan, [14.99, 15.0, 30.0])
    assert lrs == pytest.approx([0.1, 0.01, 0.001])
    lrs = _lrs({"sched": "cosine", "warmup_epochs": 2, "warmup_lr": 0.0}, make_plan({"type": "uniform"}, 10, 9),
               [0.0, 0.5, 1.0, 1.5, 5.0, 9.99])
    assert lrs[:4] == pytest.approx([0.0, 0.025, 0.05, 0.075])
    assert lrs[4] == pytest.approx(0.05) and lrs[5] < 1e-4
