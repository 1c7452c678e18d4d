"""tools/slurm_train.sh: sbatch with the signal ahead of the time limit, srun with --resume, requeue after
a preemption exit -- the command lines (pretrain/launch.py) and the script itself, run for real with
stand-in sbatch / srun / scontrol executables (slurm cannot exist here) that record how they were called."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pretrain.launch import (
    BATCH_MARKER,
    PREEMPTED_EXIT_CODE,
    ROOT,
    LaunchError,
    job_from,
    requeue_command,
    sbatch_command,
    srun_command,
    with_auto_resume,
)

SCRIPT = ROOT / "tools" / "slurm_train.sh"
ARGS = ["gpu", "r50", "configs/pretrain/imagenet_r50_dar74_120e.py"]


def test_srun_runs_one_task_per_gpu_with_auto_resume(tmp_path):
    job = job_from([*ARGS, str(tmp_path), "--amp"], {"GPUS": "16", "GPUS_PER_NODE": "8", "SRUN_ARGS": "--qos=high"})
    cmd = srun_command(job)
    assert cmd[0] == "srun" and "--nodes=2" in cmd and "--ntasks=16" in cmd and "--ntasks-per-node=8" in cmd
    assert "--gres=gpu:8" in cmd and "--kill-on-bad-exit=1" in cmd and "--qos=high" in cmd
    train = cmd[cmd.index("-u") + 1:]
    assert train[:3] == [str(ROOT / "tools" / "train.py"), ARGS[2], f"--work-dir={tmp_path}"]
    assert train[3:] == ["--launcher", "slurm", "--amp", "--resume"]  # a requeued job continues
    # a resume the user named is kept as it is, never doubled
    assert with_auto_resume(["--resume", "a.pth"]) == ["--resume", "a.pth"]
    assert with_auto_resume(["--resume=a.pth"]) == ["--resume=a.pth"]
    small = srun_command(job_from([*ARGS, str(tmp_path)], {"GPUS": "2"}))
    assert "--nodes=1" in small and "--ntasks-per-node=2" in small and "--gres=gpu:2" in small


def test_sbatch_asks_for_the_signal_ahead_of_the_limit_and_can_requeue(tmp_path):
    work = tmp_path / "wd"
    job = job_from([*ARGS, str(work), "--amp"], {"GPUS": "8", "TIME": "2-00:00:00", "SIGNAL_LEAD_S": "600",
                                                 "SBATCH_ARGS": "--account=vision"})
    cmd = sbatch_command(job, "/x/tools/slurm_train.sh")
    assert cmd[0] == "sbatch" and "--signal=USR1@600" in cmd and "--requeue" in cmd and "--time=2-00:00:00" in cmd
    assert f"--output={work / 'slurm-%j.out'}" in cmd and "--open-mode=append" in cmd and work.is_dir()
    export = next(a for a in cmd if a.startswith("--export="))
    assert f"{BATCH_MARKER}=1" in export and f"DAR_ROOT={ROOT}" in export  # the spooled copy finds the project
    assert cmd[cmd.index("--account=vision") + 1:] == ["/x/tools/slurm_train.sh", *ARGS, str(work), "--amp"]
    assert "--signal=TERM@300" in sbatch_command(job_from([*ARGS, str(work)], {"SIGNAL": "SIGTERM"}), "s")


def test_requeue_only_after_a_preemption_exit_inside_our_batch_job():
    batch = {"SLURM_JOB_ID": "4242", BATCH_MARKER: "1"}
    assert requeue_command(PREEMPTED_EXIT_CODE, batch) == ["scontrol", "requeue", "4242"]
    assert requeue_command(0, batch) is None and requeue_command(1, batch) is None
    assert requeue_command(PREEMPTED_EXIT_CODE, {"SLURM_JOB_ID": "4242"}) is None  # salloc: nothing to requeue


@pytest.mark.parametrize("env, message", [({"GPUS": "0"}, "GPUS must be a positive integer"),
                                          ({"GPUS_PER_NODE": "x"}, "GPUS_PER_NODE must be"),
                                          ({"SIGNAL": "KILL"}, "SIGNAL must be USR1, USR2 or TERM")])
def test_bad_settings_are_one_line(env, message, tmp_path):
    with pytest.raises(LaunchError, match=message):
        job_from([*ARGS, str(tmp_path)], env)
    with pytest.raises(LaunchError, match="usage: tools/slurm_train.sh"):
        job_from(ARGS, {})


FAKE = """#!{python}
import json, os, sys
with open(os.environ["FAKE_SLURM_LOG"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
sys.exit(int(os.environ.get("FAKE_" + os.path.basename(sys.argv[0]).upper() + "_RC", "0")))
"""


def _script(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir(exist_ok=True)
    for name in ("sbatch", "srun", "scontrol"):
        (bin_dir / name).write_text(FAKE.format(python=sys.executable))
        (bin_dir / name).chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != BATCH_MARKER}
    full = {**clean, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM_LOG": str(log),
            "PYTHON": sys.executable, **env}
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full, timeout=60)
    calls = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
    return proc, calls


def test_script_from_a_login_node_submits_itself(tmp_path):
    proc, calls = _script(tmp_path, {"GPUS": "4"}, *ARGS, str(tmp_path / "wd"), "--amp")
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 1 and calls[0][0] == "sbatch"
    assert calls[0][-6:] == [str(SCRIPT), *ARGS, str(tmp_path / "wd"), "--amp"] and "--signal=USR1@300" in calls[0]


@pytest.mark.parametrize("srun_rc, batch, calls_expected, rc_expected", [
    (PREEMPTED_EXIT_CODE, True, ["srun", "scontrol"], 0),  # preempted in our batch job: requeued
    (1, True, ["srun"], 1),  # a failure is the job's, never requeued
    (0, True, ["srun"], 0),
    (PREEMPTED_EXIT_CODE, False, ["srun"], PREEMPTED_EXIT_CODE),  # salloc: the code is passed on
])
def test_script_inside_a_job_runs_srun_and_requeues_after_preemption(srun_rc, batch, calls_expected, rc_expected,
                                                                    tmp_path):
    env = {"SLURM_JOB_ID": "777", "FAKE_SRUN_RC": str(srun_rc), **({BATCH_MARKER: "1"} if batch else {})}
    proc, calls = _script(tmp_path, env, *ARGS, str(tmp_path / "wd"))
    assert proc.returncode == rc_expected, proc.stderr
    assert [c[0] for c in calls] == calls_expected
    assert calls[0][-4:] == [f"--work-dir={tmp_path / 'wd'}", "--launcher", "slurm", "--resume"]
    if "scontrol" in calls_expected:
        assert calls[1] == ["scontrol", "requeue", "777"] and "requeueing job 777" in proc.stderr


# A stand-in for srun (slurm cannot exist here) that does what srun does for one task on this node: sets the
# task's SLURM_* variables and runs the command (exec: the task is srun's process, so a signal reaches it and
# its exit code is srun's). The GPU is the one thing mocked: mmengine's slurm init calls
# torch.cuda.set_device(SLURM_LOCALID), which a CPU cannot do (a sitecustomize makes it a no-op there).
SRUN = """#!{python}
import os, sys
args = sys.argv[1:]
opts = {{}}
while args and args[0].startswith("--"):
    key, _, value = args.pop(0)[2:].partition("=")
    opts[key] = value
assert opts.get("ntasks") == "1", "the stand-in srun runs one task"
with open(os.environ["FAKE_SLURM_LOG"], "a") as f:
    f.write('["srun"]\\n')
os.environ.update(SLURM_PROCID="0", SLURM_NTASKS="1", SLURM_LOCALID="0", SLURM_NODELIST="localhost",
                  SLURM_STEP_ID="0", PYTHONPATH=os.environ["FAKE_SITE"] + os.pathsep + os.environ.get("PYTHONPATH", ""))
os.execvp(args[0], args)
"""
NO_GPU = """import torch
if not torch.cuda.is_available():
    torch.cuda.set_device = lambda device: None
"""


@pytest.mark.slow
def test_a_preempted_fine_tuning_task_exits_75_through_srun_and_the_job_requeues_and_resumes(tmp_path):
    """tools/slurm_train.sh inside a batch job, its srun a stand-in that execs the task: a real SIGTERM to
    the job's processes (slurm's preemption signal) -> the fine-tuning writes its checkpoint and exits 75 ->
    the script runs ``scontrol requeue``; the requeued job (the same command) resumes and finishes."""
    import signal as sig
    import socket
    import time

    import timm
    import torch
    from helpers.transfer_runs import TINY

    from dar_common.workdir import latest_checkpoint
    from transfer.tinydata import generate

    generate(tmp_path / "data", **TINY)
    torch.manual_seed(0)
    torch.save({"state_dict": timm.create_model("resnet18").state_dict(),
                "meta": {"arch": "resnet18", "method": "uniform"}}, tmp_path / "backbone.pth")
    (tmp_path / "bin").mkdir()
    for name, text in (("sbatch", FAKE), ("scontrol", FAKE), ("srun", SRUN)):
        (tmp_path / "bin" / name).write_text(text.format(python=sys.executable))
        (tmp_path / "bin" / name).chmod(0o755)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_GPU)
    (tmp_path / "calls.jsonl").unlink(missing_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path / "wd"
    argv = ["bash", str(SCRIPT), "cpu", "ft", "configs/transfer/pspnet_r18b-d8_tiny.py", str(work), "--backbone",
            str(tmp_path / "backbone.pth"), "--data-root", str(tmp_path / "data" / "cityscapes"), "--cfg-options",
            "train_cfg.max_iters=3", "train_cfg.val_interval=3", "default_hooks.checkpoint.interval=100"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != BATCH_MARKER}
    env = {**clean, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "FAKE_SLURM_LOG": str(tmp_path / "calls.jsonl"),
           "PYTHON": sys.executable, "FAKE_SITE": str(tmp_path / "site"), "GPUS": "1", "SLURM_JOB_ID": "777",
           BATCH_MARKER: "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore"}
    job = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    deadline = time.monotonic() + 1800
    while True:  # the task catches SIGTERM once training runs (PreemptionHook): then slurm's signal comes
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[0][-3000:]
        task = next((p for p in _children(job.pid) if _catches(p, sig.SIGTERM)), None)
        if task is not None:
            break
        time.sleep(0.05)
    os.killpg(job.pid, sig.SIGTERM)  # slurm signals every process of the job: the batch script and the task
    out = job.communicate(timeout=1800)[0]
    calls = slurm_calls(tmp_path / "calls.jsonl")
    assert job.returncode == 0, out[-3000:]  # the requeue succeeded: the batch script ends well
    assert [c[0] for c in calls] == ["srun", "scontrol"] and calls[1] == ["scontrol", "requeue", "777"], calls
    assert "preempted (exit 75) after a checkpoint: requeueing job 777" in out, out[-3000:]
    stopped = latest_checkpoint(work)
    assert stopped is not None and stopped.name != "iter_3.pth", out[-3000:]
    again = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)  # requeued job
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed epoch: 0, iter: {stopped.stem.split('_')[1]}" in again.stdout + again.stderr
    assert latest_checkpoint(work).name == "iter_3.pth"
    assert [c[0] for c in slurm_calls(tmp_path / "calls.jsonl")] == ["srun", "scontrol", "srun"]


def slurm_calls(log: Path) -> list[list[str]]:
    """The stand-ins' calls, less mmengine's ``scontrol show hostname`` (MASTER_ADDR is set: unused)."""
    return [c for c in map(json.loads, log.read_text().splitlines()) if c[:2] != ["scontrol", "show"]]


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the stand-in srun execs the task: it is launch.py's child)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        kids = [p for p, parent in parents.items() if parent == current]
        out += kids
        todo += kids
    return out


def _catches(pid: int, signum: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (signum - 1) & 1)
