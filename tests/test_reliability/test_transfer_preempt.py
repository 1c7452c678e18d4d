"""Issue 20, fine-tuning preemption: a real SIGTERM/SIGUSR1 to a running ``tools/train.py`` (1 process) or to
one rank of ``tools/dist_train.sh`` (2 gloo ranks under torchrun): the iteration in progress finishes,
every rank writes/waits for that iteration's checkpoint, every rank exits 75 (dist_train.sh too), and
``--resume`` ends in the uninterrupted run's weights and optimizer state (metrics.json too on 1 rank), with
the shipped dropout and data augmentation on. The signal is sent once the process has its handler (its
``/proc/<pid>/status`` SigCgt mask), so it lands inside training, never before it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.transfer_runs import (
    ROOT,
    TIMEOUT_S,
    TINY,
    TINY_RECIPES,
    free_port,
    recipe_id,
    tool,
    write_record,
)

from dar_common.workdir import latest_checkpoint, read_metrics

SEG = ROOT / "configs" / "transfer" / "pspnet_r18b-d8_tiny.py"
ITERS = 3
OPTIONS = ["--cfg-options", f"train_cfg.max_iters={ITERS}", f"train_cfg.val_interval={ITERS}",
           "default_hooks.checkpoint.interval=100", "randomness.seed=0"]  # only the last and the preemption's
NO_VAL = ["val_cfg=None", "val_dataloader=None", "val_evaluator=None"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    import timm

    from transfer.tinydata import generate

    folder = tmp_path_factory.mktemp("preempt")
    generate(folder / "data", **TINY)
    torch.manual_seed(0)
    torch.save({"state_dict": timm.create_model("resnet18").state_dict(),
                "meta": {"arch": "resnet18", "method": "uniform"}}, folder / "backbone.pth")
    return {"data": folder / "data" / "cityscapes", "backbone": folder / "backbone.pth"}


# PSPNet in CI; the other tiny recipes as shipped (RPN and RoI samplers, focal loss, keypoint flips) extended:
# what the signal path does is recipe-independent (PreemptionHook), their kill/resume runs are in CI
RECIPES = [pytest.param(ROOT / "configs" / "transfer" / name, id=recipe_id(name),
                        marks=() if name == SEG.name else pytest.mark.extended) for name in TINY_RECIPES]


def args(inputs, work: Path, extra: list[str] = (), config: Path = SEG) -> list[str]:
    data = inputs["data"].parent / TINY_RECIPES[config.name]
    return [str(config), "--backbone", str(inputs["backbone"]), "--data-root", str(data),
            "--work-dir", str(work), *OPTIONS, *extra]


def catches(pid: int, sig: signal.Signals) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (sig - 1) & 1)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return sorted(out)


def signal_when_armed(proc: subprocess.Popen, target, sig: signal.Signals) -> None:
    """Send ``sig`` to ``target()`` (a pid) as soon as that process catches it."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ended ({proc.returncode}) before the signal"
        pid = target()
        if pid and catches(pid, sig):
            os.kill(pid, sig)
            return
        time.sleep(0.05)
    raise AssertionError("the preemption handler was never installed")


def same_state(a_dir: Path, b_dir: Path) -> list[str]:
    a = torch.load(a_dir / f"iter_{ITERS}.pth", map_location="cpu", weights_only=False)
    b = torch.load(b_dir / f"iter_{ITERS}.pth", map_location="cpu", weights_only=False)
    diff = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert diff == [], diff[:5]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    assert all(torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])) for i in sa for k in sa[i])
    assert a["param_schedulers"] == b["param_schedulers"]
    return [f"weights ({len(a['state_dict'])} tensors)", f"optimizer ({len(sa)} buffers)", "schedulers"]


def run(argv: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})


@pytest.mark.slow
@pytest.mark.parametrize("config", RECIPES)
def test_sigterm_on_one_process(config, inputs, tmp_path):
    ref = tool("train.py", *args(inputs, tmp_path / "ref", config=config))
    assert ref.returncode == 0, ref.stderr[-3000:]
    work = tmp_path / "cut"
    proc = run([sys.executable, str(ROOT / "tools" / "train.py"), *args(inputs, work, config=config)])
    signal_when_armed(proc, lambda: proc.pid, signal.SIGTERM)
    out = proc.communicate(timeout=TIMEOUT_S)[0]
    assert proc.returncode == 75, out[-3000:]
    stopped = latest_checkpoint(work)
    assert stopped is not None and stopped.name != f"iter_{ITERS}.pth", out[-3000:]
    assert "SIGTERM received: stopping after this iteration" in out
    assert out.strip().splitlines()[-1].startswith(f"preempted at iteration {stopped.stem.split('_')[1]}: "
                                                   f"{stopped.name} written; resume with --resume")
    resumed = tool("train.py", *args(inputs, work, config=config), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    compared = same_state(work, tmp_path / "ref")
    assert read_metrics(work)["metrics"] == read_metrics(tmp_path / "ref")["metrics"]
    write_record("transfer_preempt", config=str(config.relative_to(ROOT)), ranks=1, signal="SIGTERM",
                 stopped_at=stopped.name, exit_code=proc.returncode, compared=[*compared, "metrics.json"],
                 identical=True)


@pytest.mark.slow
@pytest.mark.parametrize("config", RECIPES)
def test_sigusr1_on_one_of_two_ranks(config, inputs, tmp_path):
    """SIGUSR1 to rank 1 only: the per-iteration agreement stops both; dist_train.sh exits 75."""
    script = [str(ROOT / "tools" / "dist_train.sh")]
    env = {"PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run([*script, str(config), "2", *args(inputs, tmp_path / "ref", NO_VAL, config)[1:]], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, **env, "PORT": free_port()})
    assert ref.returncode == 0, ref.stderr[-3000:]
    work = tmp_path / "cut"
    proc = run([*script, str(config), "2", *args(inputs, work, NO_VAL, config)[1:]], env={**env, "PORT": free_port()})

    def rank1() -> int | None:
        ranks = [p for p in children(proc.pid)
                 if b"train.py" in Path(f"/proc/{p}/cmdline").read_bytes()] if proc.poll() is None else []
        if len(ranks) < 2:
            return None
        by_rank = {}
        for p in ranks:
            environ = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
            rank = next((e.split(b"=", 1)[1] for e in environ if e.startswith(b"RANK=")), None)
            by_rank[rank] = p
        # both must catch it before rank 1 is signalled: the agreement needs rank 0 inside training too
        return by_rank.get(b"1") if all(catches(p, signal.SIGUSR1) for p in ranks) else None

    signal_when_armed(proc, rank1, signal.SIGUSR1)
    out = proc.communicate(timeout=TIMEOUT_S)[0]
    assert proc.returncode == 75, out[-3000:]
    stopped = latest_checkpoint(work)
    assert stopped is not None and stopped.name != f"iter_{ITERS}.pth", out[-3000:]
    ckpt = torch.load(stopped, map_location="cpu", weights_only=False)
    assert ckpt["rng_states"]["world_size"] == 2
    assert "torchrun: the ranks were preempted" in out, out[-3000:]
    resumed = subprocess.run([*script, str(config), "2", *args(inputs, work, NO_VAL, config)[1:], "--resume"],
                             cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env, "PORT": free_port()})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    compared = same_state(work, tmp_path / "ref")
    write_record("transfer_preempt", config=str(config.relative_to(ROOT)), ranks=2, signal="SIGUSR1 (rank 1 only)",
                 stopped_at=stopped.name, exit_code=proc.returncode, compared=compared, identical=True)


def test_the_pipeline_passes_a_preemption_on():
    """The pipeline's torchrun launch goes through pretrain.torchrun (torchrun itself exits 1 for any failed
    worker) and a stage that exited 75 is a preemption (tools/pipeline.py exits 75), not a failure."""
    from transfer.study.launch import Launch
    from transfer.study.runner import StageFailed
    from transfer.study.stages import Stage

    cmd = Launch.from_config(dict(launcher="pytorch", gpus=2), {}).wrap(["tools/train.py", "c.py"], "seg", job="j")
    assert cmd[1:3] == ["-m", "pretrain.torchrun"]
    stage = Stage("finetune", "uniform", 0, "seg")
    assert StageFailed(stage, "finetune seg <- uniform seed 0 failed (exit 75)").preempted
    assert not StageFailed(stage, "finetune seg <- uniform seed 0 failed (exit 1)").preempted
