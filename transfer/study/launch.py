"""How a training/testing stage is launched: one process (CPU, one GPU), torchrun, or slurm's srun.

The pipeline config's ``launch`` dict (all keys optional)::

    launch = dict(
        launcher='pytorch',                # 'none' (default) | 'pytorch' (torchrun) | 'slurm' (srun)
        gpus=dict(default=8, seg=4),       # processes per stage: by 'pretrain' or a transfer entry's name,
                                           # then the entry's task, else 'default'
        # torchrun across nodes: run the SAME pipeline command on every node with NNODES, NODE_RANK,
        # MASTER_ADDR (and PORT) set, as for tools/dist_train.sh; node 0 publishes, marks and reports.
        # slurm: srun spans nodes by itself (gpus > gpus_per_node)
        partition='gpu', gpus_per_node=8, cpus_per_task=5, srun_args=[],
        jobs=2,                            # launcher 'none' only: this many stages at once (--jobs N)
    )

``jobs`` runs independent single-process stages side by side: a pre-training beside another, or beside
scratch fine-tunings that need none; a fine-tuning once its backbone is published. Each child gets its
share of the cores (``OMP_NUM_THREADS``, unless set) and, on a machine with at least ``jobs`` GPUs, its
own GPU (``CUDA_VISIBLE_DEVICES``). On a 2-core CPU two single-threaded stages do more work per second
than one stage on two threads (small tensors use a second thread poorly).

``gpus`` and ``launcher`` change what a run computes (the global batch), so they enter the stage digests;
node rank, master address and port do not. With ``jobs`` > 1 the children's thread count enters them too:
a fine-tuning is bit-reproducible at a given thread count, but 1 and 2 intra-op threads sum floats in
another order, and over a few dozen steps that moved the demo's Faster R-CNN AP50 by several points (within
its seed spread), so a report folder is not continued at another thread count. (``jobs=1`` keeps the
digests it always had.)
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from .errors import PipelineError

LAUNCHERS = ("none", "pytorch", "slurm")


@dataclass(frozen=True)
class Launch:
    launcher: str = "none"
    gpus: dict[str, int] = field(default_factory=dict)
    partition: str | None = None
    gpus_per_node: int = 8
    cpus_per_task: int = 5
    srun_args: tuple[str, ...] = ()
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    port: int = 29500
    jobs: int = 1  # stages run at once (launcher 'none')

    @classmethod
    def from_config(cls, d: dict[str, Any] | None, env: dict[str, str] | None = None) -> Launch:
        d, env = dict(d or {}), os.environ if env is None else env
        launcher = d.pop("launcher", "none")
        if launcher not in LAUNCHERS:
            raise PipelineError(f"launch.launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
        gpus = d.pop("gpus", {})
        gpus = {"default": gpus} if isinstance(gpus, int) else dict(gpus)
        if any(not isinstance(g, int) or g < 1 for g in gpus.values()):
            raise PipelineError(f"launch.gpus must be positive integers, got {gpus}")
        jobs = d.pop("jobs", 1)
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise PipelineError(f"launch.jobs must be a positive integer, got {jobs!r}")
        if jobs > 1 and launcher != "none":
            raise PipelineError(f"launch.jobs={jobs} runs single-process stages side by side; with "
                                f"launcher={launcher!r} each stage spans its GPUs already (use launch.gpus)")
        if launcher == "slurm" and not d.get("partition"):
            raise PipelineError("launch.partition is required with launcher='slurm'")
        known = {"partition", "gpus_per_node", "cpus_per_task", "srun_args"}
        if set(d) - known:
            raise PipelineError(f"unknown launch key(s): {', '.join(sorted(set(d) - known))}")
        node = dict(nnodes=int(env.get("NNODES", 1)), node_rank=int(env.get("NODE_RANK", 0)),
                    master_addr=env.get("MASTER_ADDR", "127.0.0.1"), port=int(env.get("PORT", 29500)))
        if launcher != "pytorch":
            node = {}
        return cls(launcher, gpus, d.get("partition"), int(d.get("gpus_per_node", 8)),
                   int(d.get("cpus_per_task", 5)), tuple(d.get("srun_args", ())), **node, jobs=jobs)

    def slot_env(self, slot: int, cpus: int | None = None, gpus: list[str] | None = None) -> dict[str, str]:
        """Environment of the child run in concurrency slot ``slot`` (0 .. jobs-1); empty for jobs=1.
        ``cpus`` / ``gpus`` (the visible GPU ids) default to this machine's."""
        if self.jobs == 1:
            return {}
        env = {}
        if "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(self.threads(cpus))
        gpus = visible_gpus() if gpus is None else gpus
        if len(gpus) >= self.jobs:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot]
        return env

    @property
    def is_main_node(self) -> bool:
        return self.node_rank == 0

    def gpus_for(self, key: str, fallback: str | None = None) -> int:
        """Processes for stage ``key`` ('pretrain' or an entry's name), else for ``fallback`` (its task)."""
        default = self.gpus.get("default", 1)
        return self.gpus.get(key, self.gpus.get(fallback, default) if fallback else default)

    def threads(self, cpus: int | None = None) -> int:
        """Intra-op threads of each child with ``jobs`` > 1: OMP_NUM_THREADS if set, else its share of the cores."""
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            return int(os.environ["OMP_NUM_THREADS"])
        return max(1, (cpus or os.cpu_count() or 1) // self.jobs)

    def identity(self, key: str, fallback: str | None = None) -> list[str]:
        """What of the launch changes the result: enters the stage digest."""
        if self.launcher == "none":
            return [] if self.jobs == 1 else [f"threads={self.threads()}"]
        return [f"launcher={self.launcher}", f"gpus={self.gpus_for(key, fallback)}"]

    def wrap(self, tool_args: list[str], key: str, job: str, fallback: str | None = None) -> list[str]:
        """The full command for ``tool_args`` (``[tools/<tool>.py, args...]``) of stage ``key``."""
        if self.launcher == "none":
            return [sys.executable, *tool_args]
        g = self.gpus_for(key, fallback)
        if self.launcher == "pytorch":
            # torchrun itself exits 1 for any failed worker; this wrapper passes a preemption's 75 on
            return [sys.executable, "-m", "pretrain.torchrun", f"--nnodes={self.nnodes}",
                    f"--node_rank={self.node_rank}", f"--master_addr={self.master_addr}", f"--nproc_per_node={g}",
                    f"--master_port={self.port}", *tool_args, "--launcher", "pytorch"]
        per_node = min(g, self.gpus_per_node)
        return ["srun", "-p", str(self.partition), f"--job-name={job}", f"--gres=gpu:{per_node}", f"--ntasks={g}",
                f"--ntasks-per-node={per_node}", f"--cpus-per-task={self.cpus_per_task}", "--kill-on-bad-exit=1",
                *self.srun_args, sys.executable, "-u", *tool_args, "--launcher", "slurm"]


def visible_gpus() -> list[str]:
    """The GPU ids a child may be given: CUDA_VISIBLE_DEVICES's list, else 0 .. device_count-1."""
    import torch

    count = torch.cuda.device_count()
    listed = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]
