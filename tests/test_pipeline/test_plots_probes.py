"""The report's probe panel (``probe`` lines of a pre-training log.jsonl, H7's schema) and the
accuracy-vs-cost panel's cost axis (FLOPs) and scratch line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from transfer.study.plots import _flops_cost, accuracy_vs_cost, probe_metrics, probes
from transfer.study.results import TransferRun, load_pretrain_run


def write_run(root: Path, name: str, method: str, seed: int, probe_lines: list[dict]) -> Path:
    d = root / name
    d.mkdir(parents=True)
    lines = [{"type": "epoch", "epoch": 1, "kept_fraction": 1.0}, *probe_lines,
             {"type": "summary", "method": method, "arch": "resnet18", "seed": seed, "relative_cost_samples": 0.76,
              "relative_cost_flops": 0.8, "top1": 90.0, "top5": 99.0}]
    (d / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d


def probe(epoch: int, knn: float, dense: float | None) -> dict:
    """A probe line as H7's hook writes it (/work/team/probe_schema.md): the metrics and its bookkeeping."""
    return {"type": "probe", "epoch": epoch, "global_step": 10 * epoch, "knn_top1": knn, "dense_miou": dense,
            "relative_cost_flops": epoch / 6, "relative_cost_samples": epoch / 6, "cum_train_flops": 1e9 * epoch,
            "probe_flops": 1e8, "probe_wall_s": 1.5, "knn": {"k": 20}, "dense": None}


def test_probe_panel_reads_the_measured_metrics_and_skips_runs_without_probes(tmp_path):
    runs = [load_pretrain_run(write_run(tmp_path, f"dar_s{s}", "dar", s, [probe(3, 80 + s, None), probe(6, 90 + s, 40.0)]))
            for s in (0, 1)]
    assert runs[0].probes[0]["knn_top1"] == 80
    assert probe_metrics(runs) == ["knn_top1", "dense_miou"]  # not the cost, step or timing fields
    path = probes(runs, tmp_path / "probes.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
    bare = [load_pretrain_run(write_run(tmp_path, "uniform_s0", "uniform", 0, []))]
    assert probes(bare, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_accuracy_vs_cost_places_methods_by_flops_and_draws_scratch(tmp_path):
    runs = [load_pretrain_run(write_run(tmp_path, "dar_s0", "dar", 0, []))]
    assert _flops_cost(runs) == {runs[0].key: pytest.approx(0.8)}  # FLOPs, not the 0.76 of samples
    tra = [TransferRun(tmp_path / f"t{m}", "seg", "configs/transfer/pspnet_r18b-d8_tiny.py", {"mIoU": v},
                       {} if m is None else {"arch": "resnet18", "method": m, "relative_cost_samples": 0.76,
                                             "relative_cost_flops": 0.8}, None if m is None else "b.pth", 0, "resnet18")
           for m, v in (("dar", 41.0), (None, 30.0))]
    assert _flops_cost(tra)[tra[1].key] == 0.0  # scratch: no pre-training cost
    path = accuracy_vs_cost(runs, tra, tmp_path / "acc.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
