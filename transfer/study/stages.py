"""Stages of a pipeline run, where each writes, the command it runs, and its atomic completion marker."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dar_common.workdir import atomic_write_json, latest_checkpoint

from .axes import axis_options
from .launch import Launch
from .results import SCRATCH
from .spec import PipelineError, PipelineSpec

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"


@dataclass(frozen=True)
class Stage:
    kind: str  # pretrain | publish | finetune | test
    method: str
    seed: int
    entry: str | None = None  # the transfer entry's name (finetune, test)

    @property
    def id(self) -> str:
        run = f"{self.method}_s{self.seed}"
        return f"{self.kind}/{run}" if self.entry is None else f"{self.kind}/{self.entry}/{run}"


def plan(spec: PipelineSpec) -> list[Stage]:
    """All stages in run order: per method and seed pre-train then publish; then each transfer entry's
    fine-tune + test, and with ``scratch`` the same fine-tuning from a randomly initialised backbone (method
    ``scratch``, one per transfer seed; no pre-training stage)."""
    stages: list[Stage] = []
    for m in spec.methods:
        for s in spec.seeds:
            stages += [Stage("pretrain", m.name, s), Stage("publish", m.name, s)]
    for t in spec.tasks:
        for m in spec.methods:
            if spec.transfer_methods and m.name not in spec.transfer_methods:
                continue
            for s in spec.transfer_seeds:
                stages += [Stage("finetune", m.name, s, t.name), Stage("test", m.name, s, t.name)]
        for s in spec.transfer_seeds if spec.scratch else ():
            stages += [Stage("finetune", SCRATCH, s, t.name), Stage("test", SCRATCH, s, t.name)]
    return stages


class Layout:
    """Where every stage writes, under the report folder."""

    def __init__(self, report_dir: Path):
        self.root = Path(report_dir)

    def pretrain(self, method: str, seed: int) -> Path:
        return self.root / "pretrain" / f"{method}_s{seed}"

    def published(self, arch: str, method: str, seed: int) -> Path:
        return self.root / "published" / f"{arch}_{method}_s{seed}"  # + "-<hash>.pth"

    @property
    def index(self) -> Path:
        return self.root / "published" / "metafile.yml"

    def transfer(self, entry: str, method: str, seed: int) -> Path:
        return self.root / "transfer" / entry / f"{method}_s{seed}"

    def marker(self, stage: Stage) -> Path:
        return self.root / "stages" / f"{stage.id.replace('/', '__')}.json"

    def log(self, stage: Stage) -> Path:
        return self.root / "logs" / f"{stage.id.replace('/', '__')}.log"


def options_argv(opts: dict[str, Any]) -> list[str]:
    """``--cfg-options k=v ...`` in the syntax mmengine's DictAction parses back to the same values."""
    if not opts:
        return []
    return ["--cfg-options"] + [f"{k}={_opt_value(k, v)}" for k, v in opts.items()]


def _opt_value(key: str, v: Any) -> str:
    if isinstance(v, dict):  # str(dict) would reach the tool as text; nested keys are written dotted
        raise PipelineError(f"option {key}={v!r}: a dict cannot be passed as --cfg-options; write its keys "
                            f"dotted ('{key}.<name>': value)")
    if isinstance(v, (list, tuple)):
        inner = ",".join(_opt_value(key, x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner})"
    if isinstance(v, str) and (not v or any(c in v for c in ",[]()'\" \t")):
        # DictAction drops spaces and quotes and splits at commas: such a string cannot be passed
        raise PipelineError(f"option {key}={v!r}: strings passed as --cfg-options cannot hold spaces, quotes, "
                            f"commas or brackets")
    return str(v)


def digest(parts: list[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def write_marker(path: Path, record: dict[str, Any]) -> None:
    """Atomically: a marker is either absent or complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record, indent=1, newline=False)


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def quote(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def run_logged(argv: list[str], log: Path, on_line=None, echo=None, env: dict[str, str] | None = None,
               usage: dict[str, float] | None = None) -> int:
    """Run ``argv`` with its output appended to ``log``; call ``on_line(line)`` for every output line as it
    arrives (progress bars' carriage returns end lines too) and copy the raw output to the binary stream
    ``echo`` if given. ``env``: variables set for the child on top of ours; ``usage["cpu_s"]``, if given,
    receives the child's own CPU seconds (user + system, with the children it waited for), which stays
    right when several stages run at once."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", **(env or {})}
    with open(log, "ab") as f:
        f.write(f"\n$ {quote(argv)}\n".encode())
        f.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        pending = b""
        while True:
            chunk = proc.stdout.read1(4096)  # whatever has arrived, without waiting for 4 KiB
            if not chunk:
                break
            f.write(chunk)
            f.flush()
            if echo is not None:
                echo.write(chunk)
                echo.flush()
            *lines, pending = (pending + chunk).replace(b"\r", b"\n").split(b"\n")
            pending = pending[-4000:]
            for line in lines:
                if on_line is not None and line.strip():
                    on_line(line.decode(errors="replace").strip())
        _, status, rusage = os.wait4(proc.pid, 0)  # this child's resources, not all children's
        proc.returncode = os.waitstatus_to_exitcode(status)
        if usage is not None:
            usage["cpu_s"] = rusage.ru_utime + rusage.ru_stime
        return proc.returncode


def tail(path: Path, n: int = 20) -> str:
    """The last ``n`` non-empty lines of a log (progress-bar carriage returns count as line breaks)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join([ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()][-n:])


@dataclass(frozen=True)
class Command:
    """A subprocess stage: ``tools/<tool>.py`` and its arguments, launched per the pipeline's ``launch``.

    The digest covers the tool's arguments and what of the launch changes the result, not ``--resume``,
    the interpreter or the repository's location.
    """
    tool_args: list[str]
    key: str  # "pretrain" or the transfer entry's name: selects the GPU count ...
    launch: Launch
    resume: bool = False
    fallback: str | None = None  # ... else this key (the entry's task)

    @property
    def full(self) -> list[str]:
        args = self.tool_args + (["--resume"] if self.resume else [])
        return self.launch.wrap(args, self.key, job=f"dar-{self.key}", fallback=self.fallback)

    @property
    def digest(self) -> str:
        return digest([Path(self.tool_args[0]).name, *self.tool_args[1:],
                       *self.launch.identity(self.key, self.fallback)])


def tool(name: str) -> str:
    return str(TOOLS / name)


def pretrain_command(spec: PipelineSpec, layout: Layout, stage: Stage) -> Command:
    m = spec.method(stage.method)
    work = layout.pretrain(stage.method, stage.seed)
    args = [tool("train.py"), m.config, "--work-dir", str(work), *options_argv(spec.pretrain_options(m, stage.seed))]
    return Command(args, "pretrain", spec.launch, resume=latest_checkpoint(work) is not None)


def _transfer_opts(spec: PipelineSpec, stage: Stage) -> list[str]:
    """``--data-root`` and ``--cfg-options``; the fine-tuning seed is the stage's seed (so that a method's
    run with seed s and uniform's pair up, and scratch's seeds differ) unless the options set one; then the
    entry's transfer axes (:mod:`.axes`: curve points, data subset and schedule, frozen backbone)."""
    entry = spec.entry(stage.entry)
    return [*data_root_argv(spec, stage.entry),
            *options_argv({"randomness.seed": stage.seed, **spec.transfer_cfg_options, **entry.cfg_options,
                           **axis_options(spec, entry)})]


def finetune_command(spec: PipelineSpec, layout: Layout, stage: Stage, backbone: Path | None) -> Command:
    """``tools/train.py`` of one fine-tuning; ``backbone`` None: a randomly initialised backbone (scratch)."""
    work, entry = layout.transfer(stage.entry, stage.method, stage.seed), spec.entry(stage.entry)
    args = [tool("train.py"), entry.config, "--work-dir", str(work), "--backbone",
            "none" if backbone is None else str(backbone), *_transfer_opts(spec, stage)]
    return Command(args, entry.name, spec.launch, resume=latest_checkpoint(work) is not None, fallback=entry.task)


def test_command(spec: PipelineSpec, layout: Layout, stage: Stage, checkpoint: Path) -> Command:
    work, entry = layout.transfer(stage.entry, stage.method, stage.seed), spec.entry(stage.entry)
    args = [tool("test.py"), entry.config, str(checkpoint), "--work-dir", str(work), *_transfer_opts(spec, stage)]
    return Command(args, entry.name, spec.launch, fallback=entry.task)


def data_root_argv(spec: PipelineSpec, entry: str) -> list[str]:
    root = spec.data_root(entry)
    return [] if root is None else ["--data-root", root]
