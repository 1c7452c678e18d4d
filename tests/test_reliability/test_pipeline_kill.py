"""The pipeline killed (a real SIGKILL to its whole process group, the training child included) in the middle
of a pre-training stage and, on the rerun, in the middle of a fine-tuning stage: each rerun resumes the
interrupted stage from its last checkpoint (pre-training through its own ``--resume``, fine-tuning through
mmengine's ``resume=True``, which the pipeline passes as ``--resume``) and the pipeline ends with the same
tables, metrics, final weights and pre-training log as an uninterrupted one.

Cost: two tiny pipelines (uniform ResNet-18 pre-training of 2 epochs, PSPNet fine-tuning of 6 iterations)
plus two restarts, about 3 min of CPU on a 2-core machine: ``slow``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.transfer_runs import ROOT, TIMEOUT_S, TINY, pipeline_config, tool, write_record

pytestmark = pytest.mark.slow
PIPELINE = ROOT / "tools" / "pipeline.py"
WALL = {"wall_s", "time", "date", "work_dir", "git_rev"}


def run_until(cfg: Path, ready, log: Path) -> tuple[bool, float]:
    """Start the pipeline in its own session; SIGKILL the session as soon as ``ready()``; wait. Returns
    (killed, seconds); a pipeline that ends before ``ready()`` was not killed."""
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(PIPELINE), str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True,
                                env={**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"})
        try:
            while proc.poll() is None and time.monotonic() - start < TIMEOUT_S:
                if ready():
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return True, time.monotonic() - start
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return False, time.monotonic() - start


def pointer_to(work: Path, name: str):
    """Ready when ``work/last_checkpoint`` names ``name`` (the checkpoint is complete: the pointer moves after)."""
    def ready() -> bool:
        try:
            return Path((work / "last_checkpoint").read_text().strip()).name == name
        except OSError:
            return False
    return ready


def epoch_lines(work: Path) -> list[dict]:
    lines = [json.loads(x) for x in (work / "log.jsonl").read_text().splitlines() if x.strip()]
    return [{k: v for k, v in r.items() if k not in WALL} for r in lines]


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_pipeline_killed_in_pretraining_and_in_finetuning_resumes_to_the_same_results(tmp_path):
    from transfer.tinydata import generate

    tiny = tmp_path / "tiny"
    generate(tiny, **TINY)
    ref_cfg = pipeline_config(tmp_path / "ref.py", tmp_path / "ref", tiny, seg=True)
    cut_cfg = pipeline_config(tmp_path / "cut.py", tmp_path / "cut", tiny, seg=True)
    t0 = time.monotonic()
    ref = tool("pipeline.py", ref_cfg)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_s = time.monotonic() - t0

    root = tmp_path / "cut"
    pre, ft = root / "pretrain" / "uniform_s0", root / "transfer" / "seg" / "uniform_s0"
    stages = root / "stages"
    killed_pre, s1 = run_until(cut_cfg, pointer_to(pre, "epoch_1.pth"), tmp_path / "run1.log")
    assert killed_pre and not (stages / "pretrain__uniform_s0.json").exists(), "the kill missed the pre-training"
    killed_ft, s2 = run_until(cut_cfg, pointer_to(ft, "iter_2.pth"), tmp_path / "run2.log")
    assert killed_ft and not (stages / "finetune__seg__uniform_s0.json").exists(), "the kill missed the fine-tuning"
    assert (stages / "pretrain__uniform_s0.json").is_file()  # the rerun finished the interrupted pre-training
    t0 = time.monotonic()
    last = tool("pipeline.py", cut_cfg)
    assert last.returncode == 0, last.stderr[-3000:]
    s3 = time.monotonic() - t0

    # each interrupted stage was resumed, not redone: its second command carries --resume and starts later
    pre_log = (root / "logs" / "pretrain__uniform_s0.log").read_text()
    ft_log = (root / "logs" / "finetune__seg__uniform_s0.log").read_text()
    commands = [ln for ln in pre_log.splitlines() if ln.startswith("$ ")]
    assert len(commands) == 2 and "--resume" not in commands[0] and commands[1].endswith("--resume")
    assert len([ln for ln in ft_log.splitlines() if ln.startswith("$ ")]) == 2  # one worker per invocation
    job = json.loads((root / "logs" / "finetune__seg__uniform_s0.job.json").read_text())
    assert job["train"][-1] == "--resume"  # the last invocation's fine-tuning command
    assert ft_log.count("resumed epoch: 0, iter: 2") == 1 and "Advance dataloader 2 steps" in ft_log

    compared = []
    for name in sorted(p.name for p in (tmp_path / "ref" / "tables").iterdir()):
        assert (root / "tables" / name).read_bytes() == (tmp_path / "ref" / "tables" / name).read_bytes(), name
        compared.append(f"tables/{name}")
    ref_metrics = json.loads((tmp_path / "ref" / "transfer" / "seg" / "uniform_s0" / "metrics.json").read_text())
    assert json.loads((ft / "metrics.json").read_text())["metrics"] == ref_metrics["metrics"]
    compared.append("metrics.json")
    assert epoch_lines(pre) == epoch_lines(tmp_path / "ref" / "pretrain" / "uniform_s0")
    compared.append("log.jsonl")
    a, b = state(ft / "iter_6.pth"), state(tmp_path / "ref" / "transfer" / "seg" / "uniform_s0" / "iter_6.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    compared.append(f"fine-tuned weights ({len(a)} tensors)")
    assert list(root.rglob(".*.tmp*")) == []
    write_record("pipeline_kill", kills=["pre-training after epoch_1.pth", "fine-tuning after iter_2.pth"],
                 runs=4, seconds={"reference": round(ref_s), "kill_1": round(s1), "kill_2": round(s2),
                                  "resume": round(s3)}, compared=compared, identical=True)
