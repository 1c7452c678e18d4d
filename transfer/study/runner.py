"""Run a planned pipeline: skip stages marked done, run the rest in order, mark each when it succeeds.

Each marker records a digest of the stage's command chained with the digests of the stages it reads, so
a report folder that holds results of other settings is refused up front instead of mixed into a table.
"""
from __future__ import annotations

import datetime as _dt
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from pretrain.publish import PublishError, publish
from pretrain.workdir import METRICS_FILE, atomic_write_json, latest_checkpoint

from .progress import Progress, fmt_s
from .results import SCRATCH, load_pretrain_run
from .spec import PipelineError, PipelineSpec
from .stages import (
    TOOLS,
    Layout,
    Stage,
    digest,
    finetune_command,
    plan,
    pretrain_command,
    read_marker,
    run_logged,
    tail,
    test_command,
    write_marker,
)
from .worker import SENTINEL

NEEDS = {"publish": "pretrain", "finetune": "publish", "test": "finetune"}


class StageFailed(RuntimeError):
    def __init__(self, stage: Stage, message: str, log: Path | None = None):
        super().__init__(message)
        self.stage, self.log = stage, log


def label(stage: Stage) -> str:
    run = f"{stage.method} seed {stage.seed}"
    return f"{stage.kind} {run}" if stage.entry is None else f"{stage.kind} {stage.entry} <- {run}"


class Runner:
    def __init__(self, spec: PipelineSpec, archs: dict[str, str], *, echo: bool = False, show: bool = True):
        self.spec, self.archs, self.echo, self.show = spec, archs, echo, show
        self.layout = Layout(spec.report_dir)
        self.stages = plan(spec)
        self.timings: dict[str, float] = {}

    # ---- what each stage needs and makes ----
    def dependency(self, stage: Stage) -> Stage | None:
        need = NEEDS.get(stage.kind)
        if need is None or (stage.kind == "finetune" and stage.method == SCRATCH):  # scratch: no pre-training
            return None
        return Stage(need, stage.method, stage.seed, stage.entry if need == "finetune" else None)

    def expected_digest(self, stage: Stage) -> str | None:
        """Digest this stage's marker must carry, or None when a dependency is not done yet."""
        dep = self.dependency(stage)
        dep_marker = read_marker(self.layout.marker(dep)) if dep else None
        if dep is not None and dep_marker is None:
            return None
        outs = (dep_marker or {}).get("outputs", {})
        if stage.kind == "pretrain":
            own = pretrain_command(self.spec, self.layout, stage).digest
        elif stage.kind == "publish":
            own = "publish"
        elif stage.kind == "finetune":
            own = finetune_command(self.spec, self.layout, stage, _backbone(outs)).digest
        else:
            own = test_command(self.spec, self.layout, stage, Path(outs["checkpoint"])).digest
        return digest([own, dep_marker["digest"] if dep_marker else ""])

    def check_markers(self) -> None:
        """Before any work: every marked stage has its outputs and was made with these settings."""
        for stage in self.stages:
            path = self.layout.marker(stage)
            rec = read_marker(path)
            if rec is None:
                continue
            missing = [p for p in rec.get("outputs", {}).values() if not Path(p).exists()]
            if missing:
                raise PipelineError(f"missing stage input: {stage.id} is marked done but its output {missing[0]} is "
                                    f"gone; delete {path} to redo that stage")
            if rec.get("digest") != self.expected_digest(stage):
                raise PipelineError(f"report folder {self.layout.root} holds {stage.id} made with other settings "
                                    f"(see {path}); use another --report-dir or delete that folder")

    def done(self, stage: Stage) -> bool:
        return read_marker(self.layout.marker(stage)) is not None

    # ---- running ----
    def run(self) -> float:
        """Run all stages; return the wall-clock seconds. Raises StageFailed."""
        self.check_markers()
        data = self.data_needed()
        progress = Progress(len(self.stages) + int(data), enabled=self.show and not self.echo)
        try:
            if data:
                progress.begin("tiny data")
                self.make_data(progress)
                progress.end(f"tiny data written to {self.spec.tiny_data['root']} in {fmt_s(progress.stage_seconds())}")
            for stage in self.stages:
                if stage.id in self.timings:  # already run in this invocation (a test run with its fine-tuning)
                    continue
                if self.done(stage):
                    progress.end(f"{label(stage)}: done earlier, skipped")
                    continue
                progress.begin(label(stage))
                if not self.spec.launch.is_main_node:  # torchrun across nodes: node 0 writes everything
                    self.follow(stage, progress)
                    progress.end(f"{label(stage)} done on node 0 in {fmt_s(progress.stage_seconds())}")
                    continue
                test = self.pairable(stage)
                if test is not None:
                    self.run_pair(stage, test, progress)
                    continue
                cpu0 = _cpu_seconds()
                outputs = self.execute(stage, progress)
                self.mark(stage, outputs, progress, _cpu_seconds() - cpu0)
        finally:
            progress.close()
        return progress.elapsed()

    def mark(self, stage: Stage, outputs: dict[str, Any], progress: Progress, cpu_s: float | None) -> None:
        """Write the stage's marker (atomically) and report it done."""
        self.timings[stage.id] = progress.stage_seconds()
        write_marker(self.layout.marker(stage), {
            "stage": stage.id, "digest": self.expected_digest(stage), "outputs": outputs,
            "wall_s": round(self.timings[stage.id], 1), "cpu_s": None if cpu_s is None else round(cpu_s, 1),
            "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds")})
        progress.end(f"{label(stage)} done in {fmt_s(self.timings[stage.id])}")

    def pairable(self, stage: Stage) -> Stage | None:
        """The test stage to run in the fine-tuning's own process (single-process launches only)."""
        if stage.kind != "finetune" or self.spec.launch.launcher != "none" or not self.spec.launch.is_main_node:
            return None
        test = Stage("test", stage.method, stage.seed, stage.entry)
        return None if self.done(test) else test

    def run_pair(self, ft: Stage, test: Stage, progress: Progress) -> None:
        """Fine-tune and test in one worker process (see :mod:`.worker`); mark each stage as it finishes."""
        work = self.layout.transfer(ft.entry, ft.method, ft.seed)
        dep = self.dependency(ft)
        ft_cmd = finetune_command(self.spec, self.layout, ft,
                                  _backbone(read_marker(self.layout.marker(dep))["outputs"] if dep else {}))
        t_args = test_command(self.spec, self.layout, test, Path("CHECKPOINT")).tool_args
        done = self.layout.root / "logs" / f"{ft.id.replace('/', '__')}.done.json"
        done.unlink(missing_ok=True)
        job = self.layout.root / "logs" / f"{ft.id.replace('/', '__')}.job.json"
        job.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(job, {"train": ft_cmd.full[2:], "work_dir": str(work), "train_done": str(done),
                                "test_config": t_args[1], "test_args": t_args[3:]}, indent=None, newline=False)
        cpu0, state = _cpu_seconds(), {"started": 0.0}

        def on_line(line: str) -> None:
            if SENTINEL in line and not state["started"]:
                self.mark(ft, json.loads(done.read_text()), progress, None)  # CPU is counted with the test
                progress.begin(label(test))
                state["started"] = time.time()
            progress.line(line)

        log = self.layout.log(ft)
        rc = run_logged([sys.executable, "-m", "transfer.study.worker", str(job)], log, on_line=on_line,
                        echo=sys.stderr.buffer if self.echo else None)
        if not state["started"]:
            raise StageFailed(ft, f"{label(ft)} failed (exit {rc})", log)
        if rc != 0:
            raise StageFailed(test, f"{label(test)} failed (exit {rc})", log)
        metrics = work / METRICS_FILE
        if not metrics.is_file() or metrics.stat().st_mtime < state["started"] - 1:
            raise StageFailed(test, f"{label(test)} exited 0 but did not write {metrics}", log)
        self.mark(test, {"metrics": str(metrics)}, progress, _cpu_seconds() - cpu0)

    def follow(self, stage: Stage, progress: Progress, wait_s: float = 1800.0) -> None:
        """On a node other than 0: join the stage's torchrun (publishing is node 0's alone), then wait for
        node 0's marker, so that every node starts the next stage together."""
        if stage.kind != "publish":
            dep = self.dependency(stage)
            outs = (read_marker(self.layout.marker(dep)) or {}).get("outputs", {}) if dep else {}
            cmd = {"pretrain": lambda: pretrain_command(self.spec, self.layout, stage),
                   "finetune": lambda: finetune_command(self.spec, self.layout, stage, _backbone(outs)),
                   "test": lambda: test_command(self.spec, self.layout, stage, Path(outs["checkpoint"]))}[stage.kind]()
            log = self.layout.log(stage).with_suffix(f".node{self.spec.launch.node_rank}.log")
            self._run(stage, cmd.full, log, progress)
        deadline = time.monotonic() + wait_s
        while not self.done(stage):
            if time.monotonic() > deadline:
                raise StageFailed(stage, f"{label(stage)}: node 0 wrote no marker within {wait_s:.0f} s")
            time.sleep(2.0)

    def data_needed(self) -> bool:
        td = self.spec.tiny_data
        return bool(td) and bool(self.spec.tasks) and not (Path(td["root"]) / "meta.json").is_file()

    def make_data(self, progress: Progress) -> None:
        td = self.spec.tiny_data
        log = self.layout.root / "logs" / "tiny_data.log"
        argv = [sys.executable, str(TOOLS / "make_tiny_data.py"), str(td["root"]), *map(str, td.get("args", []))]
        self._run(Stage("data", "tiny", 0), argv, log, progress)

    def _run(self, stage: Stage, argv: list[str], log: Path, progress: Progress) -> None:
        rc = run_logged(argv, log, on_line=progress.line, echo=sys.stderr.buffer if self.echo else None)
        if rc != 0:
            raise StageFailed(stage, f"{label(stage)} failed (exit {rc})", log)

    def execute(self, stage: Stage, progress: Progress) -> dict[str, Any]:
        log = self.layout.log(stage)
        dep = self.dependency(stage)
        outs = (read_marker(self.layout.marker(dep)) or {}).get("outputs", {}) if dep else {}
        if stage.kind == "pretrain":
            work = self.layout.pretrain(stage.method, stage.seed)
            self._run(stage, pretrain_command(self.spec, self.layout, stage).full, log, progress)
            if load_pretrain_run(work) is None or not (work / "backbone.pth").is_file():
                raise StageFailed(stage, f"{label(stage)} exited 0 but {work} has no backbone.pth or run summary", log)
            return {"work_dir": str(work), "backbone": str(work / "backbone.pth")}
        if stage.kind == "publish":
            arch = self.archs[stage.method]
            try:
                path = publish(outs["work_dir"], self.layout.published(arch, stage.method, stage.seed),
                               index=self.layout.index, name=f"{arch}_{stage.method}_s{stage.seed}",
                               extra_meta={"seed": stage.seed})
            except PublishError as e:
                raise StageFailed(stage, f"{label(stage)} failed: {e}") from None
            return {"published": str(path)}
        work = self.layout.transfer(stage.entry, stage.method, stage.seed)
        if stage.kind == "finetune":
            self._run(stage, finetune_command(self.spec, self.layout, stage, _backbone(outs)).full, log, progress)
            ckpt = latest_checkpoint(work)
            if ckpt is None:
                raise StageFailed(stage, f"{label(stage)} exited 0 but {work} has no last_checkpoint", log)
            return {"checkpoint": str(ckpt)}
        started = time.time()
        self._run(stage, test_command(self.spec, self.layout, stage, Path(outs["checkpoint"])).full, log, progress)
        metrics = work / METRICS_FILE
        # validation during fine-tuning may have written one already: the test must have rewritten it
        if not metrics.is_file() or metrics.stat().st_mtime < started - 1:
            raise StageFailed(stage, f"{label(stage)} exited 0 but did not write {metrics}", log)
        return {"metrics": str(metrics)}

    # ---- what the report reads ----
    def work_dirs(self) -> list[Path]:
        """The planned runs' work dirs that exist (a subset run reports only its own runs)."""
        dirs = [self.layout.pretrain(s.method, s.seed) for s in self.stages if s.kind == "pretrain"]
        dirs += [self.layout.transfer(s.entry, s.method, s.seed) for s in self.stages if s.kind == "test"]
        return [d for d in dirs if d.exists()]


def _backbone(publish_outputs: dict[str, Any]) -> Path | None:
    """The published backbone a fine-tuning starts from; None for scratch (it has no publish stage)."""
    published = publish_outputs.get("published")
    return None if published is None else Path(published)


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children: a stage's cost on a busy machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


__all__ = ["Runner", "StageFailed", "label", "tail"]
