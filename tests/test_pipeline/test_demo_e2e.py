"""The main job end to end: the embedded demo pipeline, run for real (``--quick``: every stage of the demo --
data generation, pre-training of all four methods, publishing, fine-tuning and testing on all four tasks,
tables, plots, report -- with the fewest iterations), then the collected tables checked against the runs'
own outputs, the published files against their names and index, and resuming against redoing.

Runs once per session, on one xdist worker (~6 min on a 2-core CPU); everything else here reads what it wrote.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers.session_once import run_once, shared_root

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = [sys.executable, str(ROOT / "tools" / "pipeline.py"), str(ROOT / "configs" / "pipeline" / "demo.py"),
            "--quick"]
pytestmark = pytest.mark.slow
LOST_MARKER = "test__seg__dar_s0.json"  # the stage the rerun finds undone
LOST_METRICS = Path("transfer") / "seg" / "dar_s0" / "metrics.json"


def run_pipeline(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(PIPELINE + args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)


@pytest.fixture(scope="session")
def demo(tmp_path_factory, worker_id) -> dict:
    """The quick demo, run once per test session into a temporary report folder (tiny data generated there
    too), then rerun once after losing one finished stage; once for all xdist workers
    (``helpers.session_once``): tests on both workers read the saved record and one folder, which nothing
    writes to afterwards."""
    tmp = shared_root(tmp_path_factory, worker_id) / "demo"
    return {"root": tmp / "report", **run_once(tmp, run_twice)}


def run_twice(tmp: Path) -> dict:
    tiny = tmp / "tiny"
    args = ["--report-dir", str(tmp / "report"), "--cfg-options", f"tiny_data.root={tiny}",
            f"data_roots.coco={tiny / 'coco'}", f"data_roots.cityscapes={tiny / 'cityscapes'}",
            f"data_roots.shapes={tiny / 'shapes'}"]
    first = run_pipeline(args)
    assert first.returncode == 0, first.stderr[-5000:]
    # the rerun: a finished test lost its marker (killed between its metrics.json and its marker; see the
    # last test); the redone test rewrites metrics.json, keeping the fine-tuning's curve in it
    root = tmp / "report"
    lost = root / "stages" / LOST_MARKER
    markers = {p.name: p.stat().st_mtime_ns for p in (root / "stages").glob("*.json") if p != lost}
    lost.unlink()
    metrics_mtime = (root / LOST_METRICS).stat().st_mtime_ns
    again = run_pipeline(args)
    after = {name: (root / "stages" / name).stat().st_mtime_ns for name in markers}
    return {"first_stdout": first.stdout,
            "rerun": {"returncode": again.returncode, "stderr": again.stderr, "markers_before": markers,
                      "markers_after": after, "marker_restored": lost.is_file(),
                      "metrics_rewritten": (root / LOST_METRICS).stat().st_mtime_ns != metrics_mtime}}


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_report_folder_has_every_table_and_plot(demo):
    root = demo["root"]
    report = (root / "report.md").read_text()
    for title in ("Pre-training: classification", "detection and instance segmentation", "human pose estimation",
                  "semantic segmentation", "Accuracy against pre-training cost", "What DaR dropped"):
        assert title in report
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert {"plots/kept_fraction.png", "plots/accuracy_vs_cost.png", "plots/dar_losses_dar_s0.png"} <= set(images)
    for img in images:
        assert (root / img).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # what the command prints is the report's tables
    assert "| uniform | resnet18 | 100% |" in demo["first_stdout"]
    assert {p.name for p in (root / "tables").iterdir()} == {f"{t}.{e}" for t in ("cls", "det", "pose", "seg")
                                                             for e in ("md", "csv")} | {"rethinking.md"}


def test_fine_tuning_curves_in_every_run_and_the_report(demo):
    """--quick validates at 2 points of its 6 iterations (curve_points=2): each metrics.json holds both, the
    report a curve plot and a convergence table per recipe and the Rethinking summary first."""
    root = demo["root"]
    configs = set()
    for metrics in sorted((root / "transfer").glob("*/*/metrics.json")):
        rec = json.loads(metrics.read_text())
        assert [h["iter"] for h in rec["history"]] == [3, 6], metrics
        assert rec["protocol"] == "finetune" and rec["data_subset"] is None
        configs.add(Path(rec["config"]).stem)
    assert len(configs) == 5
    report = (root / "report.md").read_text()
    assert report.index("## Rethinking summary") < report.index("## Pre-training: classification")
    for cfg in configs:
        assert f"![curves_{cfg}](plots/curves_{cfg}.png)" in report
        assert f"({cfg}), fine-tuned, 100% data:" in report  # its convergence table
    assert "| it 3 | it 6 |" in report


def test_classification_rows_are_the_runs_own_summaries(demo):
    root = demo["root"]
    rows = {r["Pre-training"]: r for r in read_csv(root / "tables" / "cls.csv")}
    summaries = {}
    for d in (root / "pretrain").iterdir():
        recs = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines() if x.strip()]
        summaries[d.name.rsplit("_s", 1)[0]] = next(r for r in recs if r["type"] == "summary")
    # one name per thing: the entry (folder) is the method's row in the tables
    assert set(summaries) == {"uniform", "dar", "dar_random"} == {s["method"] for s in summaries.values()}
    base = summaries["uniform"]
    for name, s in summaries.items():
        row = rows[name]
        assert float(row["top-1 err"]) == pytest.approx(100 - s["top1"], abs=1e-4)
        assert float(row["Cost (samples)"]) == pytest.approx(s["relative_cost_samples"], abs=1e-5)
        if name != "uniform":
            delta = rows[f"Δ {name}"]
            assert float(delta["top-1 err"]) == pytest.approx(base["top1"] - s["top1"], abs=1e-4)
            assert float(delta["Cost (samples)"]) == pytest.approx(
                s["relative_cost_samples"] - base["relative_cost_samples"], abs=1e-5)
    assert summaries["dar"]["relative_cost_samples"] < 0.8  # DaR trained fewer samples than uniform


# (pipeline entry = folder, its task, table, metric, column, scale, the table's Method label)
@pytest.mark.parametrize("entry, task, table, key, column, scale, method_name", [
    ("det", "det", "det", "coco/bbox_mAP", "AP^bb", 100, "FPN"),
    ("retinanet", "det", "det", "coco/bbox_mAP", "AP^bb", 100, "RetinaNet"),  # a second det recipe, own rows
    ("ins", "ins", "det", "coco/segm_mAP", "AP^m", 100, "Mask R-CNN"),
    ("pose", "pose", "pose", "coco/AP", "AP^kp", 100, "SimpleBaseline"),
    ("seg", "seg", "seg", "mIoU", "mIoU", 1, "PSPNet")])
def test_transfer_delta_is_dar_minus_uniform_from_the_metrics_files(demo, entry, task, table, key, column, scale,
                                                                   method_name):
    root = demo["root"]
    metrics = {m: json.loads((root / "transfer" / entry / f"{m}_s0" / "metrics.json").read_text())
               for m in ("uniform", "dar")}
    assert all(rec["task"] == task for rec in metrics.values())
    uni, dar = (metrics[m]["metrics"][key] * scale for m in ("uniform", "dar"))
    rows = [r for r in read_csv(root / "tables" / f"{table}.csv") if r["Method"] == method_name]
    by = {r["Pre-training"]: r for r in rows}
    assert float(by["uniform"][column]) == pytest.approx(uni, abs=1e-4)
    assert float(by["dar"][column]) == pytest.approx(dar, abs=1e-4)
    assert float(by["Δ dar"][column]) == pytest.approx(dar - uni, abs=1e-4)


def test_collect_results_cli_reproduces_the_pipelines_tables(demo):
    root = demo["root"]
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "collect_results.py"), str(root / "pretrain"),
                        str(root / "transfer"), "--format", "csv"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    expected = "\n".join((root / "tables" / f"{t}.csv").read_text() for t in ("cls", "det", "pose", "seg"))
    assert r.stdout.strip() == expected.strip()


def test_published_models_match_their_names_index_and_the_transfer_record(demo):
    root = demo["root"]
    index = yaml.safe_load((root / "published" / "metafile.yml").read_text())["Models"]
    files = sorted((root / "published").glob("*.pth"))
    assert sorted(m["Weights"] for m in index) == [f.name for f in files] and len(files) == 3
    for f in files:
        assert hashlib.sha256(f.read_bytes()).hexdigest().startswith(f.stem.rsplit("-", 1)[1])
        ckpt = torch.load(f, map_location="cpu", weights_only=True)
        assert set(ckpt) == {"state_dict", "meta"} and ckpt["meta"]["arch"] == "resnet18"
    rec = json.loads((root / "transfer" / "seg" / "dar_s0" / "metrics.json").read_text())
    published = torch.load(rec["backbone"], map_location="cpu", weights_only=True)["meta"]
    assert rec["backbone_meta"] == published and published["method"] == "dar"  # meta survives into transfer


def test_rerun_skips_every_finished_stage_and_redoes_only_a_removed_one(demo):
    """One rerun (two jobs, as the demo config launches; run by the fixture) after a finished test lost its
    marker: only that stage runs again (rewriting its metrics.json, whose fine-tuning curve
    test_fine_tuning_curves_in_every_run_and_the_report checks), every other one is skipped untouched."""
    again = demo["rerun"]
    assert again["returncode"] == 0, again["stderr"][-3000:]
    markers = again["markers_before"]
    assert LOST_MARKER not in markers and len(markers) > 1
    assert again["stderr"].count("done earlier, skipped") == len(markers)
    assert again["markers_after"] == markers
    redone = [line for line in again["stderr"].splitlines() if " done in " in line]
    assert len(redone) == 1 and "test seg <- dar seed 0" in redone[0]
    assert again["marker_restored"] and again["metrics_rewritten"]
