"""Table building as pure functions: grouping, seed means, Δ against the uniform baseline, rendering."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from transfer.study.results import (
    PretrainRun,
    TransferRun,
    classification_table,
    collect,
    group_key,
    mean_std,
    to_csv,
    to_markdown,
    transfer_table,
)


def pre(method: str, cost: float, top1: float, arch: str = "resnet18", seed: int = 0) -> PretrainRun:
    return PretrainRun(Path(f"{arch}_{method}_{seed}"), {"type": "summary", "method": method, "arch": arch,
                       "relative_cost_samples": cost, "relative_cost_flops": cost, "top1": top1,
                       "top5": min(100.0, top1 + 7)}, [])


def tra(task: str, method: str, cost: float, metrics: dict, arch: str = "resnet18") -> TransferRun:
    return TransferRun(Path(f"{task}_{method}"), task, f"configs/transfer/{task}_tiny.py", metrics,
                       {"arch": arch, "method": method, "relative_cost_samples": cost})


def test_mean_std_uses_sample_std_and_skips_missing():
    assert mean_std([1.0, 3.0, None]) == (2.0, pytest.approx(2 ** 0.5))
    assert mean_std([5.0]) == (5.0, None)
    assert mean_std([None]) == (None, None)


def test_group_key_rounds_cost_so_seeds_group_together():
    assert group_key({"arch": "a", "method": "dar", "relative_cost_samples": 0.86011}) == \
        group_key({"arch": "a", "method": "dar", "relative_cost_samples": 0.86049})



def test_seeds_of_a_loss_driven_method_group_by_parameters_not_by_their_achieved_cost(tmp_path):
    """KAKURENBO's achieved cost differs by seed (0.92 vs 0.91 in the methods demo): one row of 2 runs, in
    both tables. Other parameters are another row; without recorded parameters the cost stands for them."""
    def meta(cost, **params):
        return {"arch": "resnet18", "method": "kakurenbo", "relative_cost_samples": cost, "method_params": params}
    assert group_key(meta(0.9207, max_fraction=0.3)) == group_key(meta(0.9069, max_fraction=0.3))
    assert group_key(meta(0.9207, max_fraction=0.3)) != group_key(meta(0.9207, max_fraction=0.4))
    runs = []
    for seed, (cost, top1) in enumerate([(0.9207, 54.7), (0.9069, 48.4)]):
        work = tmp_path / f"kakurenbo_s{seed}"
        work.mkdir()
        (work / "config.py").write_text(f"seed = {seed}\nmethod = dict(type='kakurenbo', max_fraction=0.3)\n")
        runs.append(PretrainRun(work, {"type": "summary", "method": "kakurenbo", "arch": "resnet18",
                                       "relative_cost_samples": cost, "relative_cost_flops": cost, "top1": top1,
                                       "top5": 100.0}, []))
    assert runs[0].method_params == {"max_fraction": 0.3} and runs[0].key == runs[1].key
    rows = [r for r in classification_table(runs).rows if not r.delta]
    assert [(r.labels["Pre-training"], r.runs) for r in rows] == [("kakurenbo", 2)]
    assert rows[0].cost == pytest.approx((0.9207 + 0.9069) / 2)
    fine = [TransferRun(Path(f"seg_s{s}"), "seg", "configs/transfer/seg_tiny.py", {"mIoU": m}, meta(c, max_fraction=0.3))
            for s, (c, m) in enumerate([(0.9207, 0.4), (0.9069, 0.42)])]
    assert fine[0].key == fine[1].key == runs[0].key  # the transfer rows meet the pre-training row

def test_classification_rows_average_seeds_and_delta_is_row_minus_uniform_of_same_backbone():
    runs = [pre("uniform", 1.0, 70.0, seed=0), pre("uniform", 1.0, 72.0, seed=1),
            pre("dar", 0.86, 73.5, seed=0), pre("dar", 0.86, 72.5, seed=1),
            pre("uniform", 1.0, 60.0, arch="resnet50"), pre("dar", 0.86, 59.0, arch="resnet50")]
    t = classification_table(runs)
    rows = [(r.labels["Pre-training"], r.labels["Backbone"], r.delta) for r in t.rows]
    assert rows == [("uniform", "resnet18", False), ("dar", "resnet18", False), ("Δ dar", "resnet18", True),
                    ("uniform", "resnet50", False), ("dar", "resnet50", False), ("Δ dar", "resnet50", True)]
    by = {(r.labels["Pre-training"], r.labels["Backbone"]): r for r in t.rows}
    err = lambda xs: sum(100 - x for x in xs) / len(xs)  # noqa: E731
    assert by[("uniform", "resnet18")].values["top-1 err"] == pytest.approx(err([70, 72]))
    assert by[("Δ dar", "resnet18")].values["top-1 err"] == pytest.approx(err([73.5, 72.5]) - err([70, 72]))
    assert by[("Δ dar", "resnet50")].values["top-1 err"] == pytest.approx(1.0)  # 41 - 40, its own baseline
    assert by[("Δ dar", "resnet18")].cost == pytest.approx(-0.14)
    assert by[("uniform", "resnet18")].runs == 2


def test_transfer_table_scales_coco_fractions_to_percent_and_hides_negative_sentinels():
    runs = [tra("det", "uniform", 1.0, {"coco/bbox_mAP": 0.300, "coco/bbox_mAP_s": -1.0}),
            tra("det", "dar", 0.86, {"coco/bbox_mAP": 0.312, "coco/bbox_mAP_s": -1.0}),
            tra("ins", "uniform", 1.0, {"coco/bbox_mAP": 0.25, "coco/segm_mAP": 0.2}),
            tra("ins", "dar", 0.86, {"coco/bbox_mAP": 0.26, "coco/segm_mAP": 0.19})]
    t = transfer_table("det", runs)
    assert [c.header for c in t.columns] == ["AP^bb", "AP^m"]  # empty columns (APs = -1) dropped
    methods = [(r.labels["Method"], r.labels["Pre-training"]) for r in t.rows]
    assert methods == [("FPN", "uniform"), ("FPN", "dar"), ("FPN", "Δ dar"),
                       ("Mask R-CNN", "uniform"), ("Mask R-CNN", "dar"), ("Mask R-CNN", "Δ dar")]
    assert t.rows[2].values["AP^bb"] == pytest.approx(1.2)
    assert t.rows[2].values["AP^m"] is None  # FPN has no masks
    assert t.rows[5].values["AP^m"] == pytest.approx(-1.0)
    assert transfer_table("pose", runs) is None


def test_no_uniform_baseline_means_no_delta_rows():
    t = classification_table([pre("dar", 0.86, 70.0), pre("online", 1.0, 71.0)])
    assert not any(r.delta for r in t.rows)


def test_markdown_and_csv_render_the_same_rows():
    tables = collect([pre("uniform", 1.0, 70.0), pre("random_drop", 0.86, 69.0)],
                     [tra("seg", "uniform", 1.0, {"mIoU": 40.0}), tra("seg", "random_drop", 0.86, {"mIoU": 41.5})])
    assert list(tables) == ["cls", "seg"]
    md = to_markdown(tables["seg"])
    assert "| PSPNet | uniform | resnet18 | 100% | - | 1 | 40.00 |" in md
    assert "| *PSPNet* | *Δ random_drop* | *resnet18* | *-14%* | - |  | *+1.50* |" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(tables["seg"]))))
    assert [r["Row"] for r in rows] == ["mean", "mean", "delta"]
    assert float(rows[2]["mIoU"]) == pytest.approx(1.5) and float(rows[2]["Cost (samples)"]) == pytest.approx(-0.14)


def test_bn_recalibrated_backbones_are_their_own_row_in_both_tables():
    """Same method and cost, but recalibrated BatchNorm statistics: not a seed of the plain run."""
    plain, recal = pre("dar", 0.76, 70.0), pre("dar", 0.76, 71.0)
    recal.epochs.append({"type": "epoch", "epoch": 6, "top1": 71.0, "bn_recalibrate": {"samples": 1350}})
    t = classification_table([pre("uniform", 1.0, 72.0), plain, recal])
    errors = {r.labels["Pre-training"]: r.values["top-1 err"] for r in t.rows}
    assert len(t.rows) == 5 and errors["dar"] == pytest.approx(30.0) and errors["dar+bn"] == pytest.approx(29.0)
    assert errors["Δ dar+bn"] == pytest.approx(1.0) and errors["Δ dar"] == pytest.approx(2.0)
    runs = [tra("seg", "uniform", 1.0, {"mIoU": 40.0}), tra("seg", "dar", 0.76, {"mIoU": 41.0}),
            tra("seg", "dar", 0.76, {"mIoU": 43.0})]
    runs[2].backbone_meta["bn_recalibrate"] = {"samples": 1350}
    rows = {r.labels["Pre-training"]: r.values["mIoU"] for r in transfer_table("seg", runs).rows}
    assert rows["dar"] == pytest.approx(41.0) and rows["dar+bn"] == pytest.approx(43.0)
