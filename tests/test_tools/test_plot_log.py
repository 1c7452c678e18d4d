"""tools/analysis/plot_log.py: curves of several pre-training logs, overlaid, against epochs or cost."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from dar_common.workdir import LOG_FILE, append_jsonl

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "analysis" / "plot_log.py"
spec = importlib.util.spec_from_file_location("plot_log", TOOL)
plot_log = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_log)


def write_run(folder: Path, kept: list[float], probe_every: int | None = None, size: int = 100) -> Path:
    """A work dir whose log.jsonl has the trainer's epoch records (and a summary line)."""
    folder.mkdir(parents=True)
    for epoch, fraction in enumerate(kept, start=1):
        trained = int(size * fraction)
        record = {"type": "epoch", "epoch": epoch, "trained_samples": trained, "dataset_size": size,
                  "kept_fraction": fraction, "train_flops": 3.0 * trained, "selection_flops": 1.0,
                  "wall_s": 1.0, "train_loss": 2.0 / epoch, "lr": 0.1 if epoch < 3 else 0.01,
                  "top1": 10.0 * epoch, "top5": 50.0}
        if probe_every and epoch % probe_every == 0:
            record["knn_top1"] = 5.0 * epoch
        append_jsonl(folder / LOG_FILE, record)
    append_jsonl(folder / LOG_FILE, {"type": "summary", "top1": 10.0 * len(kept)})
    return folder


def run_tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_overlays_runs_one_panel_per_key_and_writes_a_png(tmp_path):
    dar = write_run(tmp_path / "dar", [1.0, 1.0, 0.6, 0.36], probe_every=2)
    uniform = write_run(tmp_path / "uniform", [1.0, 1.0, 1.0, 1.0])
    out = tmp_path / "curves.png"
    proc = run_tool(dar, uniform / LOG_FILE, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "train_loss, lr, kept_fraction, top1, knn_top1 of 2 run(s)" in proc.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_cost_axis_is_cumulative_and_probes_plot_where_logged(tmp_path):
    runs = [plot_log.epoch_records(plot_log.log_path(write_run(tmp_path / "a", [1.0, 0.5, 0.5, 1.0], probe_every=2)))]
    assert plot_log.x_values(runs[0], "samples") == [100, 150, 200, 300]
    assert plot_log.x_values(runs[0], "flops") == [301.0, 452.0, 603.0, 904.0]  # 3 x trained + 1 per epoch
    fig = plot_log.plot(runs, ["a"], plot_log.expand_keys(["top1", "probe"], runs), "samples", "t")
    top1, probe = fig.axes
    assert list(top1.lines[0].get_xdata()) == [100, 150, 200, 300]
    assert list(probe.lines[0].get_xdata()) == [150, 300] and list(probe.lines[0].get_ydata()) == [10.0, 20.0]
    assert probe.get_ylabel() == "knn_top1" and top1.get_legend() is not None


def test_a_resumed_run_keeps_the_last_record_of_an_epoch(tmp_path):
    run = write_run(tmp_path / "r", [1.0, 1.0])
    append_jsonl(run / LOG_FILE, {"type": "epoch", "epoch": 2, "trained_samples": 100, "dataset_size": 100,
                                  "kept_fraction": 1.0, "train_flops": 300.0, "train_loss": 0.25, "lr": 0.1})
    records = plot_log.epoch_records(run / LOG_FILE)
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["train_loss"] == 0.25


@pytest.mark.parametrize("extra, message", [
    (["--keys", "top7"], "no run logs 'top7'; available: "),
    (["--keys", "top1", "probe"], "no run logs a probe metric (knn_top1, dense_miou)"),
    (["--legend", "one", "two"], "--legend has 2 names for 1 runs"),
    (["--out-suffix", ".jpg"], "--out must end in .png, .pdf or .svg"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, extra, message):
    run = write_run(tmp_path / "r", [1.0, 0.5])
    out = tmp_path / ("plot.jpg" if "--out-suffix" in extra else "plot.png")
    extra = [] if "--out-suffix" in extra else extra
    proc = run_tool(run, "--out", out, *extra)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and message in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


def test_a_missing_log_is_named(tmp_path):
    proc = run_tool(tmp_path / "nowhere", "--out", tmp_path / "p.png")
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: no log.jsonl at {tmp_path / 'nowhere'}"
