"""Kill a real pre-training at chosen moments, resume it, and compare it bit for bit with an uninterrupted run.

Reusable by any method: ``kill_and_resume(config, tmp_path, kills=2)`` takes a pre-training config
path (``check_kill_and_resume`` is the one-kill form the method tests use: a SIGKILL a few steps into the
epoch where their rule is active). One call

1. runs the config uninterrupted (the reference), through ``faults.py`` so that every seam it passes
   (steps, end-of-epoch rules, checkpoint writes, ``last_checkpoint`` updates) is written to a marks
   file -- the run's timeline;
2. draws ``kills`` moments from that timeline with a seeded generator, spread over the kinds of seam
   (a step, inside a checkpoint's bytes, before the pointer moves, inside the end-of-epoch rule), and
   runs the same config in a second work dir, sending a real SIGKILL at each moment and resuming
   (``--resume``, auto) after each, until a last resume finishes;
3. compares the two work dirs: every ``log.jsonl`` line (wall-clock aside), the final checkpoint's
   weights, optimizer, scheduler, method state (shared and per rank), feed, RNG states and hook
   states, ``backbone.pth``, and every ``selection/*.npz`` array; any difference fails, naming it.

With ``ranks=2`` every run is ``torchrun --nproc_per_node 2`` on gloo and the kill hits one rank (drawn);
torchrun then stops the other, as it would on a cluster. Each call appends what it did to
``work_dirs/reliability/records.jsonl`` (override: ``DAR_RELIABILITY_RECORDS``); ``render_doc.py`` turns
those records into the table of ``docs/reliability.md``.

More kills than CI affords (``python tests/helpers/harness.py CONFIG --kills 10 --ranks 2``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "tools" / "train.py"
FAULTS = Path(__file__).resolve().parent / "faults.py"
POINTS = ("checkpoint", "selection", "step", "pointer")  # the order kinds are drawn in
RUN_TIMEOUT_S = 600
# The tiny configs as the reliability tests run them, one reference run per config serving every test that
# uses these: batch 128 (11 steps an epoch: 6 epochs in seconds, every seam still passed) at 16 px (a quarter
# of the 32-px pixels: the same steps, epochs, checkpoints and selections, so the same seams and seeded kill
# moments, each step cheaper; the tiny configs still learn there, 94 % top-1 for DaR).
TINY_OPTIONS = ["data.batch_size=128", "data.img_size=16"]
# Values that may differ between an interrupted and an uninterrupted run: wall-clock, dates, paths.
IGNORED = {"wall_s", "date", "work_dir", "git_rev"}


@dataclass(frozen=True)
class Moment:
    """A kill moment: the seam ``point`` at ``key`` (a global step, an epoch, a file name); ``fraction``
    places the signal inside the hold (and, for a checkpoint, how many of its bytes are on disk)."""

    point: str
    key: str
    fraction: float

    def hold(self) -> str:
        return f"{self.point}:{self.key}:{self.fraction:.3f}"


@dataclass
class RunRecord:
    kind: str  # "reference", "killed", "resumed"
    returncode: int
    wall_s: float
    moment: Moment | None = None
    killed_rank: int | None = None


@dataclass
class Report:
    config: str
    ranks: int
    seed: int
    options: list[str]
    runs: list[RunRecord] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    stale_temporaries: list[str] = field(default_factory=list)

    @property
    def kills(self) -> list[Moment]:
        return [r.moment for r in self.runs if r.kind == "killed" and r.moment]

    @property
    def signalled(self) -> list[Moment]:
        return [r.moment for r in self.runs if r.kind not in ("killed", "reference", "resumed") and r.moment]


# -- running ------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(config: str | Path, work_dir: Path, options: list[str], resume: bool, ranks: int) -> list[str]:
    """The command line of one run: tools/train.py under faults.py, under torchrun for ``ranks > 1``."""
    args = [str(config), "--work-dir", str(work_dir)]
    args += ["--cfg-options", *options] if options else []
    args += ["--resume"] if resume else []
    if ranks == 1:
        return [sys.executable, str(FAULTS), str(TRAIN), *args]
    return [sys.executable, "-m", "pretrain.torchrun", "--nproc_per_node", str(ranks),  # as tools/dist_train.sh
            "--master_port", str(_free_port()), str(FAULTS), str(TRAIN), *args, "--launcher", "pytorch"]


def _env(marks: Path, hold: str = "", hold_s: float | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "DAR_FAULTS_LOG": str(marks),
           "DAR_FAULTS_HOLD": hold, "PYTHONHASHSEED": "0"}
    if hold_s is not None:
        env["DAR_FAULTS_HOLD_S"] = str(hold_s)
    return env


def _read_marks(path: Path) -> list[tuple[int, int, str, str]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4:
            out.append((int(parts[0]), int(parts[1]), parts[2], parts[3]))
    return out


class Launch:
    """One run in its own process (group), its output in files beside the marks."""

    def __init__(self, argv: list[str], logs: Path, hold: str = "", hold_s: float | None = None,
                 env: dict[str, str] | None = None):
        logs.mkdir(parents=True, exist_ok=True)
        self.marks, self.out = logs / "marks.txt", logs / "output.txt"
        self.marks.unlink(missing_ok=True)
        self.t0 = time.time()
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                         env={**_env(self.marks, hold, hold_s), **(env or {})},
                                         start_new_session=True)

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"run timed out after {timeout} s:\n{self.tail()}") from None

    def tail(self, chars: int = 3000) -> str:
        return self.out.read_text()[-chars:] if self.out.is_file() else ""

    def marks_list(self) -> list[tuple[int, int, str, str]]:
        return _read_marks(self.marks)


def run_to_end(config, work_dir: Path, options: list[str], ranks: int, resume: bool, logs: Path) -> tuple[int, float, list]:
    launch = Launch(command(config, work_dir, options, resume, ranks), logs)
    code = launch.wait()
    assert code == 0, f"run exited {code}:\n{launch.tail()}"
    return code, time.time() - launch.t0, launch.marks_list()


def run_and_kill(config, work_dir: Path, options: list[str], ranks: int, resume: bool, logs: Path,
                 moment: Moment, rng: random.Random, sig: signal.Signals = signal.SIGKILL) -> RunRecord:
    """Start a run, send ``sig`` to one of its processes at ``moment``, wait until every process is gone.

    SIGKILL: the process dies inside the hold. Any other signal is one pre-training catches: the hold
    is short (1 s), the run carries on from it and must stop with the preemption exit code."""
    holds = moment.point != "step"
    hold_s = None if sig == signal.SIGKILL else 1.0
    launch = Launch(command(config, work_dir, options, resume, ranks), logs, moment.hold() if holds else "", hold_s)
    # rank 0 alone writes checkpoints; every rank trains steps and applies the end-of-epoch rule
    rank = 0 if moment.point in ("checkpoint", "pointer") else rng.randrange(ranks)
    target = ("holding", moment.hold()) if holds else ("step", moment.key)
    deadline, victim = time.time() + RUN_TIMEOUT_S, None
    while victim is None:
        victim = next((pid for r, pid, point, key in launch.marks_list() if r == rank and (point, key) == target), None)
        if victim is None:
            if launch.proc.poll() is not None:
                raise AssertionError(f"the run ended (exit {launch.proc.returncode}) before {moment}:\n{launch.tail()}")
            assert time.time() < deadline, f"{moment} not reached in {RUN_TIMEOUT_S} s"
            time.sleep(0.01)
    # a step has no hold: the signal lands a little into the next step
    time.sleep(moment.fraction * (0.05 if not holds else 0.5))
    os.kill(victim, sig)
    code = launch.wait()
    if sig == signal.SIGKILL:
        assert code != 0, f"the run exited 0 after SIGKILL:\n{launch.tail()}"
    else:
        assert preempted(code, launch.tail(20000)), f"no preemption exit after {sig.name} (exit {code}):\n{launch.tail()}"
    return RunRecord("killed" if sig == signal.SIGKILL else sig.name, code, time.time() - launch.t0, moment, rank)


def preempted(code: int, output: str) -> bool:
    """The preemption exit (75), from the process itself or from ``pretrain.torchrun`` for 2 ranks, whose
    report then names a worker's 75 too."""
    from pretrain.launch import PREEMPTED_EXIT_CODE

    workers = re.findall(r"exitcode\s*:\s*(-?\d+)", output)
    return code == PREEMPTED_EXIT_CODE and (not workers or str(PREEMPTED_EXIT_CODE) in workers)


# -- choosing moments ------------------------------------------------------------------------------------
def timeline(marks: list[tuple[int, int, str, str]]) -> list[tuple[str, str]]:
    """Rank 0's seams in order, each once (``holding`` lines aside)."""
    seen, out = set(), []
    for rank, _, point, key in marks:
        if rank == 0 and point in POINTS and (point, key) not in seen:
            seen.add((point, key))
            out.append((point, key))
    return out


def choose_moments(events: list[tuple[str, str]], kills: int, rng: random.Random) -> list[Moment]:
    """``kills`` distinct moments in timeline order, the kinds of seam taken in turn (from a random start)."""
    kinds = [k for k in POINTS if any(p == k for p, _ in events)]
    start, picked = rng.randrange(len(kinds)), set()
    for i in range(kills * 4):
        if len(picked) == kills:
            break
        kind = kinds[(start + i) % len(kinds)]
        candidates = [j for j, (p, _) in enumerate(events) if p == kind and j not in picked]
        if candidates:
            picked.add(rng.choice(candidates))
    return [Moment(*events[j], round(rng.uniform(0.05, 0.95), 3)) for j in sorted(picked)]


# -- comparing ---------------------------------------------------------------------------------------------
def differences(a, b, path: str = "") -> list[str]:
    """Where two nested states differ: tensors and arrays bit for bit (NaN equal to NaN), the rest ``==``;
    keys in ``IGNORED`` (wall-clock, dates, paths) are skipped."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = (x.numpy() if isinstance(x, torch.Tensor) else x for x in (a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        same = (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        return [] if same else [path or "<root>"]
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in set(a) ^ set(b)]
        for k in sorted(set(a) & set(b), key=str):
            if k not in IGNORED:
                out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return []
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def log_lines(work_dir: Path) -> list[dict]:
    path = work_dir / "log.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)


def compare_work_dirs(reference: Path, other: Path) -> tuple[list[str], list[str]]:
    """(what was compared, the differences) between two finished work dirs of the same config."""
    compared, diffs = [], []
    log_a, log_b = log_lines(reference), log_lines(other)
    compared.append(f"log.jsonl ({len(log_a)} lines)")
    diffs += [f"log.jsonl{d}" for d in differences(log_a, log_b)]
    last = max((p for p in reference.glob("epoch_*.pth")), key=lambda p: int(p.stem.split("_")[1]))
    a, b = _load(last), _load(other / last.name)
    keys = sorted(set(a) - {"meta", "config"})
    compared.append(f"{last.name}: {', '.join(keys)}")
    diffs += [f"{last.name}{d}" for k in keys for d in differences(a.get(k), b.get(k), f".{k}")]
    a, b = _load(reference / "backbone.pth"), _load(other / "backbone.pth")
    compared.append("backbone.pth state_dict")
    diffs += [f"backbone.pth{d}" for d in differences(a["state_dict"], b["state_dict"], ".state_dict")]
    names_a = sorted(p.name for p in (reference / "selection").glob("*.npz"))
    names_b = sorted(p.name for p in (other / "selection").glob("*.npz"))
    if names_a or names_b:
        compared.append(f"selection/*.npz ({len(names_a)} files)")
    if names_a != names_b:
        diffs.append(f"selection files: {names_a} vs {names_b}")
    for name in set(names_a) & set(names_b):
        za, zb = np.load(reference / "selection" / name), np.load(other / "selection" / name)
        diffs += [f"selection/{name}{d}" for d in differences(dict(za), dict(zb))]
    return compared, diffs


# -- the test -------------------------------------------------------------------------------------------------
@dataclass
class Reference:
    """An uninterrupted run: its work dir, its seams in order, and how it went."""

    work_dir: Path
    events: list[tuple[str, str]]
    run: RunRecord


def reference_run(config: str | Path, work_dir: Path, options: list[str] | None = None, ranks: int = 1) -> Reference:
    code, wall, marks = run_to_end(config, work_dir, list(options or []), ranks, False, work_dir.parent / "reference_logs")
    return Reference(work_dir, timeline(marks), RunRecord("reference", code, wall))


def _config_name(config: str | Path) -> str:
    path = Path(config).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(config)


def kill_and_resume(config: str | Path, tmp_path: Path, kills: int = 2, ranks: int = 1, seed: int = 0,
                    options: list[str] | None = None, reference: Reference | None = None,
                    record: bool = True, terms: int = 0, term_signal: str = "SIGTERM") -> Report:
    """The whole check (see the module docstring); raises AssertionError naming any difference.

    ``terms``: moments that get ``term_signal`` (caught: the run stops with a checkpoint) instead of
    SIGKILL, in a seeded order among the kills. ``reference``: an uninterrupted run of the same config,
    options and ranks to reuse (else one is run).
    """
    options = list(options or [])
    report = Report(_config_name(config), ranks, seed, options)
    if reference is None:
        reference = reference_run(config, tmp_path / "uninterrupted", options, ranks)
        report.runs.append(reference.run)
    cut, logs = tmp_path / "interrupted", tmp_path / "runs"
    rng = random.Random(seed)
    moments = choose_moments(reference.events, kills + terms, rng)
    assert len(moments) == kills + terms, f"the run has fewer than {kills + terms} seams: {reference.events}"
    signals = [signal.SIGKILL] * kills + [signal.Signals[term_signal]] * terms
    rng.shuffle(signals)
    index = {event: i for i, event in enumerate(reference.events)}
    for i, sig in enumerate(signals):
        # a resume starts after its checkpoint: a moment at or before it cannot come again (a caught
        # signal runs on to the next step); draw another of the same kind after it, before the next one
        # and a caught signal after the last step has nothing left to stop: the run just finishes
        floor, moment = resume_floor(cut, index), moments[i]
        # (a signal sent on seeing step k's mark may be handled a step or two later on a loaded machine,
        # after the last step's all-rank agreement: keep caught signals 3 steps clear of the end)
        steps = [j for j, e in enumerate(reference.events) if e[0] == "step"]
        last = len(index) if sig == signal.SIGKILL else steps[max(0, len(steps) - 3)]
        if not floor < index[(moment.point, moment.key)] < last:
            stop = index[(moments[i + 1].point, moments[i + 1].key)] if i + 1 < len(moments) else len(index)
            window = reference.events[floor + 1:min(last, max(stop, floor + 2))]
            if not window:
                break
            moment = moments[i] = Moment(*rng.choice([e for e in window if e[0] == moment.point] or window),
                                         moment.fraction)
        report.runs.append(run_and_kill(config, cut, options, ranks, i > 0, logs / f"kill_{i}", moment, rng, sig))
    code, wall, _ = run_to_end(config, cut, options, ranks, True, logs / "resume_last")
    report.runs.append(RunRecord("resumed", code, wall))
    report.compared, report.differences = compare_work_dirs(reference.work_dir, cut)
    report.stale_temporaries = sorted(p.name for p in cut.rglob(".*.tmp*"))
    if record:
        write_record("interruptions", report_fields(report))
    where = [(m.hold(), s.name) for m, s in zip(moments, signals, strict=True)]
    assert not report.differences, (f"{config} interrupted at {where} and resumed differs from the uninterrupted "
                                    f"run: {summarize(report.differences)}")
    return report


def resume_floor(work_dir: Path, index: dict[tuple[str, str], int]) -> int:
    """The reference-timeline position a resume of ``work_dir`` starts after (-1: from scratch)."""
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        return -1
    name = Path(pointer.read_text().strip()).name
    if name.startswith("step_"):  # a mid-epoch stop after that step
        return index.get(("step", name[len("step_"):-len(".pth")]), -1)
    return index.get(("pointer", name), -1)


def summarize(diffs: list[str], limit: int = 12) -> str:
    """Differences grouped by their path up to the first list index (an RNG state differs in 624 places)."""
    groups: dict[str, int] = {}
    for d in diffs:
        key = re.sub(r"(\[\d+\])+$", "[...]", d.split(": ")[0])  # rng.python[1][0] -> rng.python[1][...]
        groups[key] = groups.get(key, 0) + 1
    parts = [f"{k} ({n})" if n > 1 else k for k, n in list(groups.items())[:limit]]
    return "; ".join(parts) + (f"; and {len(groups) - limit} more" if len(groups) > limit else "")


def records_path() -> Path:
    return Path(os.environ.get("DAR_RELIABILITY_RECORDS", ROOT / "work_dirs" / "reliability" / "records.jsonl"))


def report_fields(report: Report) -> dict:
    return {"config": report.config, "ranks": report.ranks, "seed": report.seed, "options": report.options,
            "runs": [asdict(r) for r in report.runs], "compared": report.compared,
            "differences": report.differences, "stale_temporaries": report.stale_temporaries}


def write_record(kind: str, fields: dict) -> None:
    """Append what a check did (one JSON line: ``kind`` and ``fields``) for ``render_doc.py``."""
    path = records_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"kind": kind, **fields, "time": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")


# -- one kill inside a chosen epoch: the method tests' check ------------------------------------------------
def step_of_epoch(events: list[tuple[str, str]], epoch: int, nth: int) -> str:
    """The global step (a timeline key) of the ``nth`` step of ``epoch``: steps follow the end-of-epoch rule
    of ``epoch - 1``, whatever the epoch's size."""
    start = 0 if epoch == 1 else events.index(("selection", str(epoch - 1))) + 1
    steps = [key for point, key in events[start:] if point == "step"]
    return steps[nth - 1]


def check_kill_and_resume(config: str | Path, tmp_path: Path, options: list[str], kill_in: int, epochs: int,
                          after_steps: int = 2) -> dict:
    """An uninterrupted run, and a run SIGKILLed ``after_steps`` steps into epoch ``kill_in`` (at the epoch
    where a method's rule is active) then resumed: the resume retrains that epoch from the checkpoint before
    it, and everything ``compare_work_dirs`` compares must be equal. ``config``: a path, or a file name in
    ``configs/pretrain/``. Returns the uninterrupted run's last checkpoint (``epoch_<epochs>.pth``)."""
    config = _config_path(config)
    reference = reference_run(config, tmp_path / "uninterrupted", options)
    moment = Moment("step", step_of_epoch(reference.events, kill_in, after_steps), 0.0)
    cut, logs = tmp_path / "interrupted", tmp_path / "runs"
    run_and_kill(config, cut, options, 1, False, logs / "kill", moment, random.Random(0))
    # it died inside the epoch: that epoch neither logged nor checkpointed
    assert [x["epoch"] for x in log_lines(cut)] == list(range(1, kill_in))
    assert not (cut / f"epoch_{kill_in}.pth").exists()
    run_to_end(config, cut, options, 1, True, logs / "resume")
    _, diffs = compare_work_dirs(reference.work_dir, cut)
    assert not diffs, f"{config.name} killed in epoch {kill_in} and resumed differs: {summarize(diffs)}"
    return _load(reference.work_dir / f"epoch_{epochs}.pth")


def rejected(config: str | Path, work_dir: Path, options: list[str]) -> list[str]:
    """``tools/train.py`` with bad ``options`` must exit 2 before training, writing nothing; its stderr lines.

    Run in this process, through the entry point ``tools/train.py`` hands a pre-training config to
    (``pretrain.cli.train_main``): a method's parameter check is what is tested here, and a subprocess would
    spend its ~10 s importing torch and timm to reach it. The process-level path (exit status and one line
    from a real ``tools/train.py``) is ``tests/test_pretrain/test_cli.py``'s
    ``test_tools_train_exits_nonzero_with_one_line``."""
    import contextlib
    import io

    from pretrain.cli import train_main

    argv = [str(_config_path(config)), "--work-dir", str(work_dir), "--cfg-options", *options]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = train_main(argv)
    assert code == 2, err.getvalue()[-3000:]
    assert not work_dir.exists() or not any(work_dir.iterdir()), "a rejected run wrote to its work dir"
    return err.getvalue().strip().splitlines()


def _config_path(config: str | Path) -> Path:
    path = Path(config)
    return path if path.is_absolute() or path.exists() else ROOT / "configs" / "pretrain" / path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="SIGKILL a tiny pre-training at seeded moments, resume, compare.")
    p.add_argument("config")
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--terms", type=int, default=0, help="moments that get SIGTERM instead (caught: checkpoint, exit 75)")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default=None, help="where the runs go (default: a temporary folder)")
    p.add_argument("--cfg-options", nargs="*", default=[])
    args = p.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = kill_and_resume(args.config, Path(args.work_dir or tmp), args.kills, args.ranks, args.seed,
                                 args.cfg_options, terms=args.terms)
    print(f"{report.config}: {len(report.kills)} SIGKILLs, {len(report.signalled)} SIGTERMs "
          f"({', '.join(r.moment.hold() for r in report.runs if r.moment)}), "
          f"{len(report.runs)} runs on {args.ranks} rank(s); identical: {'; '.join(report.compared)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
