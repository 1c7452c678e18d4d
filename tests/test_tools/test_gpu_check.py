"""bench/gpu_check.sh in its dry mode (the CPU run CI makes so the GPU check cannot rot), and its refusal
to run for real without a GPU. The real run needs a GPU: none here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def run_check(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=1500,
                          env={**os.environ, "PYTHON": sys.executable, **env})


@pytest.mark.slow
def test_dry_mode_runs_every_part_on_the_cpu_and_writes_one_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = run_check("--out", str(out), GPU_CHECK_DRY="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry"] is True and report["device"] == "cpu"
    parts = report["parts"]
    assert list(parts) == ["doctor", "ops", "vs_timm", "overhead", "finetune"]
    assert parts["doctor"]["status"] == "ok" and "--brief" in parts["doctor"]["command"]
    ops = parts["ops"]["result"]  # the CPU against itself: exactly equal
    assert ops["device"] == "cpu"
    assert all(v == 0.0 for case in ops["roi_align"].values() for v in case.values())
    assert ops["nms"]["nms_same_indices"] and ops["nms"]["batched_nms_same_indices"] and ops["nms"]["nms_kept"] > 0
    for bench in ("vs_timm", "overhead"):  # either ready for the GPU or saying what it lacks
        assert parts[bench]["status"] in ("dry", "skipped")
        assert parts[bench]["status"] == "dry" or "needed to measure on the GPU" in parts[bench]["reason"]
        assert "--device" in parts[bench]["command"] and "bf16" in parts[bench]["command"]
    recipes = parts["finetune"]["recipes"]
    assert set(recipes) == {"faster_rcnn", "mask_rcnn", "retinanet", "pspnet", "simplebaseline"}
    assert all(r["status"] == "dry" and "--backbone" in r["command"] for r in recipes.values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the real check would run")
def test_without_a_gpu_the_real_check_stops_with_one_error_line(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = run_check("--out", str(out), GPU_CHECK_DRY="0")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no GPU visible") and proc.stderr.strip().count("\n") == 0
    assert not out.exists()
