"""``launch.jobs`` / ``--jobs``: independent single-process stages run side by side, each child with its share
of the cores or its own GPU, and the pipeline still marks, resumes and reports as when run in order."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transfer.study.errors import PipelineError
from transfer.study.launch import Launch

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "pipeline" / "demo.py"


def test_slot_env_shares_the_cores_and_gives_each_slot_its_own_gpu(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    two = Launch.from_config({"jobs": 2})
    assert two.slot_env(0, cpus=2, gpus=[]) == {"OMP_NUM_THREADS": "1"}
    assert two.slot_env(1, cpus=16, gpus=["4", "5", "6"]) == {"OMP_NUM_THREADS": "8", "CUDA_VISIBLE_DEVICES": "5"}
    assert Launch.from_config({"jobs": 4}).slot_env(3, cpus=2, gpus=["0", "1"]) == {"OMP_NUM_THREADS": "1"}
    assert Launch.from_config({}).slot_env(0, cpus=2, gpus=["0", "1"]) == {}  # one at a time: inherit
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice wins
    assert two.slot_env(0, cpus=2, gpus=[]) == {}


def test_the_thread_count_enters_the_stage_digests_only_with_jobs(monkeypatch):
    """1 and 2 intra-op threads give other fine-tuning numbers: a report folder made with one is refused
    at the other; one job at a time keeps the digests it always had (no launch identity)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert Launch.from_config({}).identity("seg") == []
    assert Launch.from_config({"jobs": 2}).identity("seg") == ["threads=1"]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert Launch.from_config({"jobs": 2}).identity("seg") == ["threads=2"]


@pytest.mark.parametrize("launch, message", [
    ({"jobs": 0}, "launch.jobs must be a positive integer, got 0"),
    ({"jobs": "2"}, "launch.jobs must be a positive integer, got '2'"),
    ({"jobs": 2, "launcher": "pytorch"}, "each stage spans its GPUs already"),
])
def test_bad_jobs_is_one_line(launch, message):
    with pytest.raises(PipelineError, match=message):
        Launch.from_config(launch)


def _interval(marker: dict) -> tuple[float, float]:
    end = dt.datetime.fromisoformat(marker["finished"]).timestamp()
    return end - marker["wall_s"], end


# CI time: ``extended``. What it shows is in CI twice over: the failure test below starts the same scratch
# fine-tuning beside the same pre-training (its log ends before the pre-training does) and keeps the
# backbone's fine-tuning from starting before its publish stage; the demo test runs the whole quick demo
# with two jobs (every fine-tuning after its backbone's publish, both rows in every table) and resumes it.
@pytest.mark.slow
@pytest.mark.extended
def test_two_jobs_run_a_scratch_fine_tuning_beside_the_pre_training(tmp_path):
    """uniform seed 0 on the seg entry with scratch, ``--jobs 2``: the scratch fine-tuning reads no
    pre-training, so it starts at once in the second slot; uniform's waits for its published backbone."""
    tiny, report = tmp_path / "tiny", tmp_path / "report"
    cmd = [sys.executable, str(ROOT / "tools" / "pipeline.py"), str(DEMO), "--quick", "--methods", "uniform",
           "--tasks", "seg", "--seeds", "0", "--jobs", "2", "--report-dir", str(report), "--cfg-options",
           "scratch=True", f"tiny_data.root={tiny}", f"data_roots.coco={tiny / 'coco'}",
           f"data_roots.cityscapes={tiny / 'cityscapes'}", f"data_roots.shapes={tiny / 'shapes'}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_NUM_THREADS", None)
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert first.returncode == 0, first.stderr[-4000:]
    markers = {p.stem: json.loads(p.read_text()) for p in (report / "stages").rglob("*.json")}
    assert len(markers) == 6, sorted(markers)  # pretrain, publish; finetune + test for uniform and scratch
    by_stage = {m["stage"]: m for m in markers.values()}
    pretrain = _interval(by_stage["pretrain/uniform_s0"])
    scratch = _interval(by_stage["finetune/seg/scratch_s0"])
    uniform = _interval(by_stage["finetune/seg/uniform_s0"])
    assert scratch[0] < pretrain[1] - 1, (scratch, pretrain)  # side by side
    assert uniform[0] >= pretrain[1] - 1, (uniform, pretrain)  # after its backbone (second resolution)
    assert all(m["cpu_s"] is not None for s, m in by_stage.items() if not s.startswith("finetune/"))
    seg = (report / "tables" / "seg.md").read_text()
    assert "| PSPNet | uniform |" in seg and "| PSPNet | scratch |" in seg
    # resuming a --jobs 2 report folder: test_demo_e2e.py's rerun test (the demo config runs two jobs)


@pytest.mark.slow
def test_a_stage_that_fails_beside_another_lets_it_finish_and_starts_nothing_new(tmp_path):
    """``--jobs 2``: the scratch fine-tuning (its loader refuses batch size 0) fails while the pre-training
    runs beside it. The pre-training still finishes and is marked; nothing new (its publish stage) starts;
    the pipeline ends non-zero with one line naming the failed stage and its log."""
    tiny, report = tmp_path / "tiny", tmp_path / "report"
    config = tmp_path / "pipeline.py"
    config.write_text(f"_base_ = ['{DEMO}']\ntasks = [dict(task='seg', config='configs/transfer/pspnet_r18b-d8_tiny.py', "
                      "cfg_options={'train_dataloader.batch_size': 0})]\n")
    cmd = [sys.executable, str(ROOT / "tools" / "pipeline.py"), str(config), "--quick", "--methods", "uniform",
           "--seeds", "0", "--jobs", "2", "--report-dir", str(report), "--cfg-options", "scratch=True",
           f"tiny_data.root={tiny}", f"data_roots.coco={tiny / 'coco'}", f"data_roots.cityscapes={tiny / 'cityscapes'}",
           f"data_roots.shapes={tiny / 'shapes'}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_NUM_THREADS", None)
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert run.returncode == 1, run.stderr[-4000:]
    log = report / "logs" / "finetune__seg__scratch_s0.log"
    # the fine-tuning's preflight refuses the option with one line and exit 2 (transfer.mm.preflight)
    assert run.stderr.strip().splitlines()[-1] == (f"error: finetune seg <- scratch seed 0 failed (exit 2) -- full log: "
                                                   f"{log}; rerun the same command to resume")
    assert "train_dataloader.batch_size=0" in log.read_text() and "must be a positive integer" in log.read_text()
    markers = {p.name for p in (report / "stages").glob("*.json")}
    assert markers == {"pretrain__uniform_s0.json"}, markers  # the running stage was marked, nothing else
    pretrain = _interval(json.loads((report / "stages" / "pretrain__uniform_s0.json").read_text()))
    assert log.stat().st_mtime < pretrain[1], "the premise: the fine-tuning failed while the pre-training ran"
    assert not list((report / "logs").glob("publish__*"))  # never started
