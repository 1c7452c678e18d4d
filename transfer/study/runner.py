"""Run a planned pipeline: skip stages marked done, run the rest in order, mark each when it succeeds.

Each marker records a digest of the stage's command chained with the digests of the stages it reads, so
a report folder that holds results of other settings is refused up front instead of mixed into a table.
With ``launch.jobs`` > 1 (single-process launches) up to that many stages run at once, each as soon as
the stage it reads is marked done; a failure lets the running stages finish (and be marked), starts no
new one, and is raised as if the stages had run in order.
"""
from __future__ import annotations

import datetime as _dt
import json
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from dar_common.exit_codes import PREEMPTED_EXIT_CODE
from dar_common.workdir import METRICS_FILE, atomic_write_json, latest_checkpoint
from pretrain.publish import PublishError, publish

from .axes import subset_source
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
from .subsets import write_subset
from .worker import SENTINEL

NEEDS = {"publish": "pretrain", "finetune": "publish", "test": "finetune"}


class StageFailed(RuntimeError):
    def __init__(self, stage: Stage, message: str, log: Path | None = None):
        super().__init__(message)
        self.stage, self.log = stage, log
        # the stage's process (or its ranks) exited 75: stopped by a preemption signal after a checkpoint
        self.preempted = f"(exit {PREEMPTED_EXIT_CODE})" in message


def label(stage: Stage) -> str:
    run = f"{stage.method} seed {stage.seed}"
    return f"{stage.kind} {run}" if stage.entry is None else f"{stage.kind} {stage.entry} <- {run}"


class Runner:
    def __init__(self, spec: PipelineSpec, archs: dict[str, str], *, echo: bool = False, show: bool = True):
        self.spec, self.archs, self.echo, self.show = spec, archs, echo, show
        self.layout = Layout(spec.report_dir)
        self.stages = plan(spec)
        self.timings: dict[str, float] = {}
        self._publishing = threading.Lock()  # publishes update one index file (metafile.yml)

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
            if self.spec.launch.jobs > 1:
                self.run_concurrently(progress)
                return progress.elapsed()
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
                self.run_unit(stage, self.pairable(stage), progress)
        finally:
            progress.close()
        return progress.elapsed()

    def run_concurrently(self, progress: Progress) -> None:
        """Up to ``launch.jobs`` units at once: a stage, or a fine-tuning with its test; each starts when the
        stage it reads is marked done, in plan order, in a free slot (its own cores or GPU)."""
        todo: list[tuple[Stage, Stage | None]] = []
        paired: set[str] = set()
        for stage in self.stages:
            if self.done(stage):
                progress.end(f"{label(stage)}: done earlier, skipped")
            elif stage.id not in paired:
                test = self.pairable(stage)
                todo.append((stage, test))
                paired |= {test.id} if test is not None else set()
        slots = list(range(self.spec.launch.jobs))
        running: dict[Future, int] = {}
        failure: BaseException | None = None
        with ThreadPoolExecutor(self.spec.launch.jobs, thread_name_prefix="stage") as pool:
            while todo or running:
                while failure is None and slots:
                    unit = next((u for u in todo if self.ready(u[0])), None)
                    if unit is None:
                        break
                    todo.remove(unit)
                    slot = slots.pop(0)
                    progress.begin(label(unit[0]))
                    running[pool.submit(self.run_unit, *unit, progress, self.spec.launch.slot_env(slot))] = slot
                if not running:
                    if todo and failure is None:  # cannot happen with a valid plan; never wait forever
                        raise StageFailed(todo[0][0], f"{label(todo[0][0])}: the stage it reads was not run")
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    slots.append(running.pop(future))
                    if future.exception() is not None and failure is None:
                        failure = future.exception()
        if failure is not None:
            raise failure

    def ready(self, stage: Stage) -> bool:
        """Whether the stage ``stage`` reads is marked done (or it reads none)."""
        dep = self.dependency(stage)
        return dep is None or self.done(dep)

    def run_unit(self, stage: Stage, test: Stage | None, progress: Progress, env: dict[str, str] | None = None
                 ) -> None:
        """Run ``stage`` (begun on ``progress``) and mark it; with ``test``, both in one process."""
        if test is not None:
            self.run_pair(stage, test, progress, env)
            return
        outputs, cpu_s = self.execute(stage, progress, env)
        self.mark(stage, outputs, progress, cpu_s)

    def mark(self, stage: Stage, outputs: dict[str, Any], progress: Progress, cpu_s: float | None) -> None:
        """Write the stage's marker (atomically) and report it done."""
        self.timings[stage.id] = progress.stage_seconds(label(stage))
        write_marker(self.layout.marker(stage), {
            "stage": stage.id, "digest": self.expected_digest(stage), "outputs": outputs,
            "wall_s": round(self.timings[stage.id], 1), "cpu_s": None if cpu_s is None else round(cpu_s, 1),
            "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds")})
        progress.end(f"{label(stage)} done in {fmt_s(self.timings[stage.id])}", label(stage))

    def pairable(self, stage: Stage) -> Stage | None:
        """The test stage to run in the fine-tuning's own process (single-process launches only)."""
        if stage.kind != "finetune" or self.spec.launch.launcher != "none" or not self.spec.launch.is_main_node:
            return None
        test = Stage("test", stage.method, stage.seed, stage.entry)
        return None if self.done(test) else test

    def run_pair(self, ft: Stage, test: Stage, progress: Progress, env: dict[str, str] | None = None) -> None:
        """Fine-tune and test in one worker process (see :mod:`.worker`); mark each stage as it finishes."""
        work = self.layout.transfer(ft.entry, ft.method, ft.seed)
        self.write_subset(ft)
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
        state, usage = {"started": 0.0, "label": label(ft)}, {}

        def on_line(line: str) -> None:
            if SENTINEL in line and not state["started"]:
                self.mark(ft, json.loads(done.read_text()), progress, None)  # CPU is counted with the test
                progress.begin(label(test))
                state["started"], state["label"] = time.time(), label(test)
            progress.line(line, state["label"])

        log = self.layout.log(ft)
        rc = run_logged([sys.executable, "-m", "transfer.study.worker", str(job)], log, on_line=on_line,
                        echo=sys.stderr.buffer if self.echo else None, env=env, usage=usage)
        if not state["started"]:
            raise StageFailed(ft, f"{label(ft)} failed (exit {rc})", log)
        if rc != 0:
            raise StageFailed(test, f"{label(test)} failed (exit {rc})", log)
        metrics = work / METRICS_FILE
        if not metrics.is_file() or metrics.stat().st_mtime < state["started"] - 1:
            raise StageFailed(test, f"{label(test)} exited 0 but did not write {metrics}", log)
        self.mark(test, {"metrics": str(metrics)}, progress, usage.get("cpu_s"))

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

    def write_subset(self, stage: Stage) -> None:
        """The training subset a fine-tuning with a data fraction reads (written once, the same for every
        method and seed; rewritten identically by a stage beside it)."""
        entry = self.spec.entry(stage.entry)
        found = subset_source(self.spec, entry)
        if found is not None:
            try:
                write_subset(found[0], entry.data_fraction, self.spec.subset_seed, found[1])
            except PipelineError as e:
                raise StageFailed(stage, f"{label(stage)}: {e}") from None

    def data_needed(self) -> bool:
        td = self.spec.tiny_data
        return bool(td) and bool(self.spec.tasks) and not (Path(td["root"]) / "meta.json").is_file()

    def make_data(self, progress: Progress) -> None:
        td = self.spec.tiny_data
        log = self.layout.root / "logs" / "tiny_data.log"
        argv = [sys.executable, str(TOOLS / "make_tiny_data.py"), str(td["root"]), *map(str, td.get("args", []))]
        self._run(Stage("data", "tiny", 0), argv, log, progress)

    def _run(self, stage: Stage, argv: list[str], log: Path, progress: Progress,
             env: dict[str, str] | None = None) -> float | None:
        """Run one stage's process; its CPU seconds."""
        usage: dict[str, float] = {}
        rc = run_logged(argv, log, on_line=lambda line: progress.line(line, label(stage)),
                        echo=sys.stderr.buffer if self.echo else None, env=env, usage=usage)
        if rc != 0:
            raise StageFailed(stage, f"{label(stage)} failed (exit {rc})", log)
        return usage.get("cpu_s")

    def execute(self, stage: Stage, progress: Progress, env: dict[str, str] | None = None
                ) -> tuple[dict[str, Any], float | None]:
        """Run one stage; its outputs (for the marker) and CPU seconds."""
        log = self.layout.log(stage)
        dep = self.dependency(stage)
        outs = (read_marker(self.layout.marker(dep)) or {}).get("outputs", {}) if dep else {}
        if stage.kind == "pretrain":
            work = self.layout.pretrain(stage.method, stage.seed)
            cpu_s = self._run(stage, pretrain_command(self.spec, self.layout, stage).full, log, progress, env)
            if load_pretrain_run(work) is None or not (work / "backbone.pth").is_file():
                raise StageFailed(stage, f"{label(stage)} exited 0 but {work} has no backbone.pth or run summary", log)
            return {"work_dir": str(work), "backbone": str(work / "backbone.pth")}, cpu_s
        if stage.kind == "publish":
            arch, cpu0 = self.archs[stage.method], time.thread_time()
            try:
                with self._publishing:
                    path = publish(outs["work_dir"], self.layout.published(arch, stage.method, stage.seed),
                                   index=self.layout.index, name=f"{arch}_{stage.method}_s{stage.seed}",
                                   extra_meta={"seed": stage.seed})
            except PublishError as e:
                raise StageFailed(stage, f"{label(stage)} failed: {e}") from None
            return {"published": str(path)}, time.thread_time() - cpu0
        work = self.layout.transfer(stage.entry, stage.method, stage.seed)
        if stage.kind == "finetune":
            self.write_subset(stage)
            cpu_s = self._run(stage, finetune_command(self.spec, self.layout, stage, _backbone(outs)).full, log,
                              progress, env)
            ckpt = latest_checkpoint(work)
            if ckpt is None:
                raise StageFailed(stage, f"{label(stage)} exited 0 but {work} has no last_checkpoint", log)
            return {"checkpoint": str(ckpt)}, cpu_s
        started = time.time()
        cpu_s = self._run(stage, test_command(self.spec, self.layout, stage, Path(outs["checkpoint"])).full, log,
                          progress, env)
        metrics = work / METRICS_FILE
        # validation during fine-tuning may have written one already: the test must have rewritten it
        if not metrics.is_file() or metrics.stat().st_mtime < started - 1:
            raise StageFailed(stage, f"{label(stage)} exited 0 but did not write {metrics}", log)
        return {"metrics": str(metrics)}, cpu_s

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


__all__ = ["Runner", "StageFailed", "label", "tail"]
