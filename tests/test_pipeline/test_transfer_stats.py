"""Seed statistics of the comparison tables: the paired 95% interval of Δ rows, and the scratch row (a
fine-tuning from a randomly initialised backbone) set apart with its own Δ against uniform."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from transfer.study.results import SCRATCH, TransferRun, to_csv, to_markdown, transfer_table
from transfer.study.stats import paired_diff


def run(method: str | None, seed: int, miou: float, cost: float = 1.0) -> TransferRun:
    """A seg run fine-tuned with ``seed``; ``method`` None is a scratch run (no backbone file)."""
    meta = {} if method is None else {"arch": "resnet18", "method": method, "relative_cost_samples": cost,
                                      "relative_cost_flops": cost, "seed": seed}
    return TransferRun(Path(f"seg_{method}_{seed}"), "seg", "configs/transfer/pspnet_r18b-d8_tiny.py",
                       {"mIoU": miou}, meta, None if method is None else "b.pth", seed, "resnet18")


def test_paired_diff_is_students_t_on_the_per_seed_differences():
    a, b = {0: 41.0, 1: 44.0, 2: 40.5, 3: 43.0}, {0: 40.0, 1: 41.0, 2: 40.0, 3: 41.5}
    d = [a[s] - b[s] for s in a]
    got = paired_diff(a, b)
    mean, sd = sum(d) / 4, math.sqrt(sum((x - sum(d) / 4) ** 2 for x in d) / 3)
    low, high = scipy_stats.t.interval(0.95, 3, loc=mean, scale=sd / 2)
    assert (got.mean, got.n) == (pytest.approx(mean), 4)
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    assert got.p_value == pytest.approx(scipy_stats.ttest_rel(list(a.values()), list(b.values())).pvalue)


def test_paired_diff_pairs_by_seed_and_skips_unpaired_or_missing():
    got = paired_diff({0: 2.0, 1: None, 5: 9.0}, {0: 1.0, 1: 3.0, 2: 4.0})
    assert (got.mean, got.n, got.half_width, got.p_value) == (1.0, 1, None, None)  # one pair: no interval
    assert paired_diff({0: 1.0}, {1: 1.0}) is None


def test_scratch_row_is_set_apart_last_with_its_delta_against_uniform():
    runs = [run("uniform", 0, 45.0), run("uniform", 1, 47.0), run("dar", 0, 46.0, 0.76), run("dar", 1, 47.5, 0.76),
            run(None, 0, 30.0), run(None, 1, 33.0)]
    t = transfer_table("seg", runs)
    labels = [r.divider or r.labels["Pre-training"] for r in t.rows]
    assert labels[:3] == ["uniform", "dar", "Δ dar"]
    assert labels[3].startswith("no pre-training") and labels[4:] == [SCRATCH, f"Δ {SCRATCH}"]
    delta = t.rows[-1]
    assert delta.values["mIoU"] == pytest.approx(((30 - 45) + (33 - 47)) / 2)
    assert (delta.cis["mIoU"].n, delta.cost, t.rows[-2].cost) == (2, pytest.approx(-1.0), 0.0)
    dar = t.rows[2].cis["mIoU"]
    assert (dar.low, dar.high) == (pytest.approx(0.75 - 12.7062 * 0.25, abs=1e-3),
                                   pytest.approx(0.75 + 12.7062 * 0.25, abs=1e-3))  # d = 1, 0.5; t(0.975, 1)


def test_markdown_shows_intervals_and_csv_their_half_widths():
    runs = [run("uniform", 0, 45.0), run("uniform", 1, 47.0), run(None, 0, 30.0), run(None, 1, 33.0)]
    t = transfer_table("seg", runs)
    md = to_markdown(t)
    ci = t.rows[-1].cis["mIoU"]
    assert f"*{ci.mean:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]*" in md
    assert "**no pre-training (resnet18, random initialisation):**" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert [r["Pre-training"] for r in rows] == ["uniform", SCRATCH, f"Δ {SCRATCH}"]  # no divider in the CSV
    assert float(rows[0]["mIoU ±"]) == pytest.approx(math.sqrt(2), rel=1e-5)  # sample std of 45, 47 (6 digits)
    assert float(rows[2]["mIoU ±"]) == pytest.approx(ci.half_width, rel=1e-5)


def test_pretraining_runs_pair_by_the_seed_of_their_dumped_config(tmp_path):
    import json

    from transfer.study.results import classification_table, load_pretrain_run

    runs = []
    for method, seed, top1 in (("uniform", 0, 50.0), ("uniform", 1, 54.0), ("dar", 0, 49.0), ("dar", 1, 52.0)):
        work = tmp_path / f"{method}_s{seed}"
        work.mkdir()
        (work / "config.py").write_text(f"seed = {seed}\nmethod = dict(type='{method}')\n")
        (work / "log.jsonl").write_text(json.dumps({"type": "summary", "method": method, "arch": "resnet18",
                                                    "relative_cost_samples": 1.0 if method == "uniform" else 0.76,
                                                    "top1": top1, "top5": 100.0}) + "\n")
        runs.append(load_pretrain_run(work))
    assert [r.seed for r in runs] == [0, 1, 0, 1]  # the summary line has no seed; the config dump does
    delta = classification_table(runs).rows[-1]
    assert delta.cis["top-1 err"].n == 2 and delta.values["top-1 err"] == pytest.approx(((51 - 50) + (48 - 46)) / 2)
