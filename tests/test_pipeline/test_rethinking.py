"""The "Rethinking" analyses on hand-made runs: convergence tables (Δ per curve point), the summary table,
Kendall's τ of probe vs fine-tuning against scipy, and the rows per setting of the transfer tables."""
from __future__ import annotations

from pathlib import Path

import pytest
from scipy import stats

from transfer.study.results import PretrainRun, TransferRun, transfer_table
from transfer.study.rethinking import (
    convergence_tables,
    curve_plots,
    kendall,
    probe_agreement_table,
    probe_at,
    summary_table,
)

ITERS = (15, 30)


def meta(method: str, seed: int) -> dict:
    return {"arch": "resnet18", "method": method, "relative_cost_samples": 1.0 if method == "uniform" else 0.76,
            "method_params": {} if method == "uniform" else {"p": 0.6}, "seed": seed}


def run(method: str, seed: int, ap: tuple[float, float], frozen: bool = False, fraction: float = 1.0,
        ap50: float = 0.5, ap75: float = 0.3) -> TransferRun:
    """A Faster R-CNN run whose box AP was ``ap[i]`` at ITERS[i]; the test metric is the last point."""
    history = [{"iter": i, "epoch": 0, "metrics": {"coco/bbox_mAP": a}} for i, a in zip(ITERS, ap, strict=True)]
    scratch = method == "scratch"
    return TransferRun(Path(f"/w/{method}_{seed}_{frozen}_{fraction}"), "det", "configs/faster-rcnn_r18_fpn_tiny.py",
                       {"coco/bbox_mAP": ap[-1], "coco/bbox_mAP_50": ap50, "coco/bbox_mAP_75": ap75},
                       {} if scratch else meta(method, seed), None if scratch else "b.pth", seed, "resnet18",
                       history, "frozen" if frozen else "finetune", fraction)


@pytest.fixture
def runs() -> list[TransferRun]:
    return [run("uniform", 0, (0.30, 0.50)), run("uniform", 1, (0.34, 0.52)), run("uniform", 2, (0.32, 0.48)),
            run("dar", 0, (0.20, 0.49), ap75=0.25), run("dar", 1, (0.25, 0.52), ap75=0.2),
            run("dar", 2, (0.21, 0.47), ap75=0.3),
            run("scratch", 0, (0.05, 0.40)), run("scratch", 1, (0.08, 0.45)), run("scratch", 2, (0.02, 0.41)),
            run("uniform", 0, (0.1, 0.2), fraction=0.1), run("uniform", 1, (0.1, 0.3), fraction=0.1),
            run("dar", 0, (0.05, 0.1), fraction=0.1), run("dar", 1, (0.06, 0.2), fraction=0.1),
            run("uniform", 0, (0.2, 0.3), frozen=True), run("dar", 0, (0.1, 0.25), frozen=True)]


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean difference and its 95% t half-width, computed here from the definition."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    res = stats.ttest_1samp(d, 0.0)
    ci = res.confidence_interval(0.95)
    return sum(d) / len(d), (ci.high - ci.low) / 2


def test_convergence_table_has_each_point_and_paired_deltas(runs):
    tables = convergence_tables(runs)
    full = next(t for t in tables if "fine-tuned, 100% data" in t.title)
    assert [c.header for c in full.columns] == ["it 15", "it 30"]
    delta = next(r for r in full.rows if r.delta and r.labels["Pre-training"] == "Δ dar")
    mean, half = paired([20, 25, 21], [30, 34, 32])
    assert delta.values["it 15"] == pytest.approx(mean) and delta.cis["it 15"].half_width == pytest.approx(half)
    mean, _ = paired([49, 52, 47], [50, 52, 48])
    assert delta.values["it 30"] == pytest.approx(mean)
    uniform = next(r for r in full.rows if r.labels.get("Pre-training") == "uniform" and not r.delta)
    assert uniform.values["it 15"] == pytest.approx(32.0) and uniform.stds["it 15"] == pytest.approx(2.0)
    assert any(r.labels.get("Pre-training") == "Δ scratch" for r in full.rows)
    assert {t.title.split(", ", 1)[1].split(":")[0] for t in tables} == {
        "fine-tuned, 100% data", "fine-tuned, 10% data", "frozen, 100% data"}


def test_summary_table_cells(runs):
    s = summary_table(runs)
    assert s.headers[:2] == ["Recipe", "Pre-training"]
    assert "fine-tuned, 10% data, first point" in s.headers and "frozen, 100% data, end" in s.headers
    assert s.headers[-2:] == ["ΔAP^bb_50", "ΔAP^bb_75"]
    methods = [r[1] for r in s.rows]
    assert methods == ["dar", "scratch (no pre-training)"]
    dar = s.diffs[0]
    mean, half = paired([20, 25, 21], [30, 34, 32])
    first = dar["fine-tuned, 100% data, first point"]
    assert first.mean == pytest.approx(mean) and first.half_width == pytest.approx(half)
    cell = s.rows[0][s.headers.index("fine-tuned, 100% data, first point")]
    assert cell.startswith("it 15: ") and f"{mean:+.2f}" in cell  # the iteration is the cell's (recipes differ)
    assert dar["fine-tuned, 10% data, end"].mean == pytest.approx(paired([10, 20], [20, 30])[0])
    assert dar["frozen, 100% data, end"].mean == pytest.approx(-5.0) and dar["frozen, 100% data, end"].n == 1
    assert dar["ΔAP^bb_75"].mean == pytest.approx(paired([25, 20, 30], [30, 30, 30])[0])
    assert dar["ΔAP^bb_50"].mean == pytest.approx(0.0)
    assert s.rows[1][s.headers.index("frozen, 100% data, end")] == "-"  # scratch was not run frozen


def test_rows_per_setting_in_the_transfer_table(runs):
    t = transfer_table("det", runs)
    assert t.label_headers == ["Method", "Setting", "Pre-training", "Backbone"]
    settings = [r.labels["Setting"] for r in t.rows if not r.divider and not r.delta]
    assert settings[0] == "fine-tuned, 100% data" and "fine-tuned, 10% data" in settings
    assert "frozen, 100% data" in settings
    # a table with only the default setting keeps its old columns
    plain = transfer_table("det", [r for r in runs if r.setting == (False, 1.0)])
    assert plain.label_headers == ["Method", "Pre-training", "Backbone"]


def test_kendall_against_scipy_and_by_hand():
    x, y = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    tau, p = kendall(x, y)
    assert tau == pytest.approx((5 - 1) / 6)  # 5 concordant, 1 discordant pair of 6
    ref = stats.kendalltau(x, y)
    assert (tau, p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    assert kendall([1.0], [2.0]) == (None, None) and kendall([1.0, 1.0], [1.0, 2.0]) == (None, None)


def pre(method: str, seed: int, knn: list[float]) -> PretrainRun:
    """A 4-epoch pre-training with a probe line per epoch."""
    summary = {"arch": "resnet18", "method": method, "relative_cost_samples": meta(method, seed)[
        "relative_cost_samples"], "seed": seed, "epochs": 4}
    r = PretrainRun(Path(f"/p/{method}_{seed}"), summary, [{"epoch": e} for e in range(1, 5)],
                    [{"type": "probe", "epoch": e, "knn_top1": k} for e, k in enumerate(knn, 1)])
    r.__dict__["config"] = {"method": {"type": method, **meta(method, seed)["method_params"]}, "seed": seed}
    return r


def test_probe_agreement_against_scipy(runs):
    pres = [pre("uniform", 0, [10, 20, 30, 40]), pre("uniform", 1, [12, 25, 33, 45]),
            pre("uniform", 2, [11, 21, 31, 35]), pre("dar", 0, [9, 30, 28, 38]), pre("dar", 1, [15, 22, 36, 41]),
            pre("dar", 2, [8, 18, 29, 39])]
    assert probe_at(pres[0], "knn_top1") == 40 and probe_at(pres[0], "knn_top1", quarter=True) == 10
    table = probe_agreement_table(pres, runs)
    row = table.rows[0]
    # the hand-made table, paired by (method, seed): fine-tuned box AP (full data, fine-tuned) in percent
    final_ap = {("uniform", 0): 50, ("uniform", 1): 52, ("uniform", 2): 48, ("dar", 0): 49, ("dar", 1): 52,
                ("dar", 2): 47}
    end = {("uniform", 0): 40, ("uniform", 1): 45, ("uniform", 2): 35, ("dar", 0): 38, ("dar", 1): 41,
           ("dar", 2): 39}
    quarter = {("uniform", 0): 10, ("uniform", 1): 12, ("uniform", 2): 11, ("dar", 0): 9, ("dar", 1): 15,
               ("dar", 2): 8}
    keys = sorted(final_ap)
    ref = stats.kendalltau([end[k] for k in keys], [final_ap[k] for k in keys])
    ref4 = stats.kendalltau([quarter[k] for k in keys], [final_ap[k] for k in keys])
    assert row[2] == "6"
    assert row[3] == f"{ref.statistic:.2f}" and row[4] == f"{ref.pvalue:.3f}"
    assert row[5] == f"{ref4.statistic:.2f}" and row[6] == f"{ref4.pvalue:.3f}"


def test_curve_plot_written(runs, tmp_path):
    out = curve_plots(runs, tmp_path)
    assert list(out) == ["curves_faster-rcnn_r18_fpn_tiny"]
    assert out["curves_faster-rcnn_r18_fpn_tiny"].read_bytes()[:4] == b"\x89PNG"
