"""Slurm launching for ``tools/slurm_train.sh``: the sbatch and srun command lines, and requeue on preemption.

    tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]

From a login node the script submits itself with ``sbatch``: ``--signal=USR1@<lead>`` asks slurm to send
SIGUSR1 to every task ``<lead>`` seconds before the time limit, and ``--requeue`` lets the job be queued
again. Inside that batch job it runs one task per GPU with ``srun`` and ``tools/train.py --launcher
slurm --resume`` (no path: the newest checkpoint of WORK_DIR, or a fresh start when there is none).
A pre-training that receives the signal (or slurm's SIGTERM on preemption) finishes its step, writes a
mid-epoch checkpoint and exits with :data:`PREEMPTED_EXIT_CODE`; the batch script then runs
``scontrol requeue $SLURM_JOB_ID`` and the requeued job resumes where it stopped. Any other exit code
is the job's. Inside an interactive allocation (``salloc``) the script runs ``srun`` in the foreground
and never requeues.

Settings come from the environment, as in OpenMMLab's script: ``GPUS`` (8), ``GPUS_PER_NODE`` (8),
``CPUS_PER_TASK`` (5), ``SRUN_ARGS``, ``SBATCH_ARGS``, ``TIME`` (sbatch ``--time``), ``SIGNAL`` (USR1),
``SIGNAL_LEAD_S`` (300), ``PYTHON``.
"""
from __future__ import annotations

import math
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dar_common.console import print_error
from dar_common.exit_codes import PREEMPTED_EXIT_CODE

BATCH_MARKER = "DAR_SLURM_BATCH"  # set by our sbatch submission: this process is the batch script
ROOT = Path(__file__).resolve().parents[1]
USAGE = "usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]"


class LaunchError(ValueError):
    """A bad launch setting; one line."""


@dataclass
class SlurmJob:
    partition: str
    job_name: str
    config: str
    work_dir: str
    train_args: list[str] = field(default_factory=list)
    gpus: int = 8
    gpus_per_node: int = 8
    cpus_per_task: int = 5
    srun_args: list[str] = field(default_factory=list)
    sbatch_args: list[str] = field(default_factory=list)
    time_limit: str | None = None
    signal: str = "USR1"
    signal_lead_s: int = 300
    python: str = "python"

    @property
    def nodes(self) -> int:
        return math.ceil(self.gpus / self.gpus_per_node)

    @property
    def tasks_per_node(self) -> int:
        return min(self.gpus, self.gpus_per_node)


def _positive(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name, "") or str(default)
    if not value.isdigit() or int(value) < 1:
        raise LaunchError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def job_from(argv: list[str], env: dict[str, str]) -> SlurmJob:
    """The job described by the script's arguments and environment."""
    if len(argv) < 4:
        raise LaunchError(USAGE)
    sig_name = (env.get("SIGNAL", "") or "USR1").removeprefix("SIG")
    if sig_name not in ("USR1", "USR2", "TERM"):
        raise LaunchError(f"SIGNAL must be USR1, USR2 or TERM (what pre-training can catch), got {sig_name!r}")
    job = SlurmJob(*argv[:4], train_args=list(argv[4:]), gpus=_positive(env, "GPUS", 8),
                   gpus_per_node=_positive(env, "GPUS_PER_NODE", 8), cpus_per_task=_positive(env, "CPUS_PER_TASK", 5),
                   srun_args=shlex.split(env.get("SRUN_ARGS", "")), sbatch_args=shlex.split(env.get("SBATCH_ARGS", "")),
                   time_limit=env.get("TIME") or None, signal=sig_name,
                   signal_lead_s=_positive(env, "SIGNAL_LEAD_S", 300), python=env.get("PYTHON", "") or "python")
    return job


def with_auto_resume(train_args: list[str]) -> list[str]:
    """``--resume`` (auto: the newest checkpoint, if any) unless the arguments name a resume already."""
    if any(a == "--resume" or a.startswith("--resume=") for a in train_args):
        return list(train_args)
    return [*train_args, "--resume"]


def srun_command(job: SlurmJob) -> list[str]:
    """One task per GPU, each ``tools/train.py ... --launcher slurm --resume``."""
    return ["srun", f"--partition={job.partition}", f"--job-name={job.job_name}", f"--nodes={job.nodes}",
            f"--ntasks={job.gpus}", f"--ntasks-per-node={job.tasks_per_node}", f"--gres=gpu:{job.tasks_per_node}",
            f"--cpus-per-task={job.cpus_per_task}", "--kill-on-bad-exit=1", *job.srun_args,
            job.python, "-u", str(ROOT / "tools" / "train.py"), job.config, f"--work-dir={job.work_dir}",
            "--launcher", "slurm", *with_auto_resume(job.train_args)]


def sbatch_command(job: SlurmJob, script: str) -> list[str]:
    """Submit ``script`` (tools/slurm_train.sh) with the same arguments as a requeue-able batch job that
    gets ``SIGNAL`` ``signal_lead_s`` seconds before its time limit (sent to every task of its steps)."""
    Path(job.work_dir).mkdir(parents=True, exist_ok=True)
    return ["sbatch", f"--partition={job.partition}", f"--job-name={job.job_name}", f"--nodes={job.nodes}",
            f"--ntasks={job.gpus}", f"--ntasks-per-node={job.tasks_per_node}", f"--gres=gpu:{job.tasks_per_node}",
            f"--cpus-per-task={job.cpus_per_task}", f"--signal={job.signal}@{job.signal_lead_s}", "--requeue",
            "--open-mode=append", f"--output={Path(job.work_dir) / 'slurm-%j.out'}",
            # slurm runs a spooled copy of the script: tell it where the project is
            *([f"--time={job.time_limit}"] if job.time_limit else []), f"--export=ALL,{BATCH_MARKER}=1,DAR_ROOT={ROOT}",
            *job.sbatch_args, script, job.partition, job.job_name, job.config, job.work_dir, *job.train_args]


def requeue_command(returncode: int, env: dict[str, str]) -> list[str] | None:
    """``scontrol requeue <job>`` after a preempted pre-training inside a batch job; None otherwise."""
    if returncode != PREEMPTED_EXIT_CODE or env.get(BATCH_MARKER) != "1" or not env.get("SLURM_JOB_ID"):
        return None
    return ["scontrol", "requeue", env["SLURM_JOB_ID"]]


def _run(cmd: list[str]) -> int:
    print("+ " + shlex.join(cmd), file=sys.stderr, flush=True)
    try:
        return subprocess.call(cmd)
    except FileNotFoundError:
        raise LaunchError(f"{cmd[0]} not found: run this on a slurm login node or inside a slurm job") from None


def _outlive_signals() -> None:
    """Inside the job slurm signals the batch script too (SIGTERM on preemption): it must live on until
    srun returns, to requeue. A no-op handler (not SIG_IGN, which srun would inherit) does that."""
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda signum, frame: print(f"{signal.Signals(signum).name}: waiting for the tasks' "
                                                       "checkpoint", file=sys.stderr, flush=True))


def main(argv: list[str], env: dict[str, str] | None = None, script: str = "tools/slurm_train.sh") -> int:
    env = dict(os.environ if env is None else env)
    try:
        job = job_from(argv, env)
        if not env.get("SLURM_JOB_ID"):  # a login node: submit ourselves as a batch job
            return _run(sbatch_command(job, script))
        _outlive_signals()
        code = _run(srun_command(job))
        requeue = requeue_command(code, env)
        if requeue is None:
            return code
        print(f"preempted (exit {code}) after a checkpoint: requeueing job {env['SLURM_JOB_ID']}", file=sys.stderr)
        return _run(requeue)
    except LaunchError as exc:
        print_error(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[2:], script=sys.argv[1]))
