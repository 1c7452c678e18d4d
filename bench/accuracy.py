"""Accuracy at equal cost on the shipped real dataset (scikit-learn digits): selection methods against controls.

    python bench/accuracy.py --suite literature   # every other registered method (InfoBatch, IES, ...) x 5 seeds (~30 min idle)
    python bench/accuracy.py --suite dar          # DaR and its controls, online (10 methods x 5 seeds)
    python bench/accuracy.py                      # both suites
    python bench/accuracy.py --quick              # a few runs of 2 epochs: checks that it runs (~1-2 min)

Every run is the real CLI (``tools/train.py configs/pretrain/tiny_digits_<method>.py --cfg-options
seed=S ...``) in its own process; the figures are read from its ``log.jsonl``. The recipe is the shipped
tiny one (test_resnet, 32 px, batch 32, 6 epochs, LR ÷10 after epoch 5).

``dar`` suite: at ~86 % and ~63 % of uniform training's samples: DaR (loss-ranked dropping), the same
schedule with random dropping, uniform training on a shortened schedule, and one fixed random subset;
online selection at equal steps. The DaR parameters for those costs on 6 epochs of 1347 images were
picked with ``plan_subset_sizes`` and are checked here with the CLI's ``--dry-run`` code path.

``literature`` suite, at matched FLOPs (selection passes included): uniform 100 %; each method at the
cost it achieves (its subsets depend on the losses); then, per method and per seed, three controls that
spend that same run's FLOPs: ``rs2`` (RS2 without replacement, the strongest random control: the control
column every method is judged against) and ``random_drop``, both with the method's achieved per-epoch FLOPs
as their per-epoch kept fractions (the same cost profile, samples drawn blindly; RS2's subsets cover the
data evenly, random_drop's are independent draws), and ``shortened`` (uniform training for round(6 x cost)
epochs: whole epochs only, so its cost is the nearest multiple of 1/6 -- the table shows each control's
own FLOPs). Paired per-seed differences with a 95 % t confidence interval and a paired t-test; the verdict
table puts every method against RS2 first.

Finished runs (a ``summary`` line in their log) are reused; ``--force`` retrains them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # pretrain/, also without an installed package
from benchlib import machine, mean_std, table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs/pretrain"
# DaR schedules on 6 epochs of digits (subset per epoch, % of the data):
#   86 %: W=1, I=1, p=0.85, R=[5] -> 100/100/85/72/61/100
#   63 %: W=0, I=1, p=0.70, R=[5] -> 100/70/49/34/24/100
DAR = {
    "86": dict(warmup=1, interval=1, keep=0.85, refresh=[5]),
    "63": dict(warmup=0, interval=1, keep=0.7, refresh=[5]),
}


def dar_opts(prefix: str, params: dict) -> list[str]:
    return [f"{prefix}.{k}={v}" if not isinstance(v, list) else f"{prefix}.{k}=[{','.join(map(str, v))}]"
            for k, v in params.items()]


def methods(quick: bool = False) -> dict[str, tuple[str, list[str]]]:
    """name -> (config file, --cfg-options)."""
    if quick:
        short = ["schedule.epochs=2", "schedule.milestones=[1]"]
        return {"uniform": ("tiny_digits_uniform.py", short),
                "dar": ("tiny_digits_dar.py",
                          short + dar_opts("method", dict(warmup=0, interval=1, keep=0.7, refresh=[])))}
    out: dict[str, tuple[str, list[str]]] = {"uniform": ("tiny_digits_uniform.py", [])}
    for cost, params in DAR.items():
        out[f"dar{cost}"] = ("tiny_digits_dar.py", dar_opts("method", params))
        out[f"random{cost}"] = ("tiny_digits_dar_random.py", dar_opts("method", params))
        out[f"shortened{cost}"] = ("tiny_digits_shortened.py", dar_opts("method.match", params))
        out[f"fixed{cost}"] = ("tiny_digits_fixed_subset.py", dar_opts("method.match", params))
    out["online"] = ("tiny_digits_online.py", [])
    return out


# the DaR suite's methods and the controls (built per seed from a literature method's achieved cost)
NOT_LITERATURE = ("uniform", "dar", "dar_random", "shortened", "fixed_subset", "online", "random_drop", "rs2")
CONTROLS = ("rs2", "random", "shortened")  # per method: <method>-<control>, RS2 first (the control column)


def literature() -> dict[str, str]:
    """method -> its tiny config, for every registered method outside the DaR suite and the controls (a new
    method joins the suite by registering itself and shipping ``configs/pretrain/tiny_digits_<name>.py``)."""
    from pretrain.methods import METHODS, load_all

    load_all()
    return {name: f"tiny_digits_{name}.py" for name in METHODS
            if name not in NOT_LITERATURE and (CONFIGS / f"tiny_digits_{name}.py").is_file()}
QUICK = ["schedule.epochs=2", "schedule.milestones=[1]"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Top-1 at equal cost on digits: selection methods vs controls.",
                                add_help=add_help)
    p.add_argument("--suite", choices=("dar", "literature", "all"), default="all",
                   help="dar: DaR and its controls; literature: every registered method outside it (InfoBatch, ...) "
                        "against FLOPs-matched controls")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", help="subset of the method names of the suite (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (each uses one CPU thread)")
    p.add_argument("--work-root", default="work_dirs/bench/accuracy")
    p.add_argument("--force", action="store_true", help="retrain finished runs")
    p.add_argument("--out", default="work_dirs/bench/accuracy.json",
                   help="results of the dar suite; the literature suite writes <out stem>_literature.json")
    p.add_argument("--quick", action="store_true", help="few runs of 2 epochs, one seed: checks that it runs")
    return p


def planned_cost(config: str, opts: list[str]) -> float:
    """The relative cost (samples) that ``tools/train.py CONFIG --dry-run`` prints."""
    from pretrain.cli import dry_run, load_config
    from pretrain.cli import get_args_parser as cli_parser

    cfg = load_config(cli_parser().parse_args([str(CONFIGS / config), "--dry-run", "--cfg-options", *opts]
                                              if opts else [str(CONFIGS / config), "--dry-run"]))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        dry_run(cfg)
    match = re.search(r"relative cost \(samples\): ([\d.]+)%", buf.getvalue())
    if not match:
        raise RuntimeError(f"--dry-run printed no relative cost:\n{buf.getvalue()}")
    return float(match.group(1)) / 100


def summary_of(work_dir: Path) -> dict | None:
    from dar_common.workdir import read_summary

    return read_summary(work_dir)


def train(name: str, config: str, opts: list[str], seed: int, work_root: Path, force: bool) -> dict:
    work_dir = work_root / f"{name}_s{seed}"
    done = summary_of(work_dir)
    if done is not None and not force:
        return {**done, "reused": True}
    argv = [sys.executable, str(ROOT / "tools/train.py"), str(CONFIGS / config), "--work-dir", str(work_dir),
            "--cfg-options", f"seed={seed}", *opts]
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env)
    done = summary_of(work_dir)
    if proc.returncode != 0 or done is None:
        raise RuntimeError(f"{name} seed {seed} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    print(f"{name} seed {seed}: top-1 {done['top1']:.2f}%, cost {100 * done['relative_cost_samples']:.1f}% "
          f"({time.time() - t0:.0f} s)", flush=True)
    return {**done, "reused": False}


def paired(a: list[float], b: list[float]) -> str:
    """Mean ± std of the per-seed differences, its 95 % t interval, wins/ties, a paired t-test's p-value."""
    from scipy.stats import t as student
    from scipy.stats import ttest_rel

    d = np.asarray(a) - np.asarray(b)
    m, s = mean_std(d.tolist())
    varies = len(d) > 1 and np.any(d != d[0])
    p = ttest_rel(a, b).pvalue if varies else float("nan")
    half = student.ppf(0.975, len(d) - 1) * s / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return (f"{m:+.2f} ± {s:.2f} (95% CI [{m - half:+.2f}, {m + half:+.2f}]; {int((d > 0).sum())}/{len(d)} seeds "
            f"better, {int((d == 0).sum())} equal, paired t-test p={p:.2f})")


def report(res: dict) -> str:
    rows = []
    for name, r in res["methods"].items():
        m, s = mean_std(r["top1"])
        rows.append([name, f"{100 * r['planned_cost']:.1f}%", f"{100 * np.mean(r['cost_samples']):.1f}%",
                     f"{100 * np.mean(r['cost_flops']):.1f}%", f"{m:.2f} ± {s:.2f}",
                     " ".join(f"{x:.1f}" for x in r["top1"])])
    lines = [table(["method", "planned cost (--dry-run)", "trained samples", "FLOPs", "top-1 % mean ± std",
                    "per seed"], rows)]
    ms = res["methods"]
    for cost in DAR:
        dar = ms.get(f"dar{cost}")
        if dar is None:
            continue
        for ctrl in (f"random{cost}", f"shortened{cost}", f"fixed{cost}", "uniform"):
            if ctrl in ms:
                lines.append(f"dar{cost} - {ctrl}: {paired(dar['top1'], ms[ctrl]['top1'])} top-1 points (paired by seed)")
    return "\n".join(lines)


def run_all(jobs: list[tuple[str, str, list[str], int]], work_root: Path, workers: int, force: bool) -> dict:
    """``{(name, seed): summary}`` of runs ``(name, config, options, seed)``, ``workers`` at a time."""
    with ThreadPoolExecutor(workers) as pool:
        futures = {(name, seed): pool.submit(train, name, config, opts, seed, work_root, force)
                   for name, config, opts, seed in jobs}
        return {job: f.result() for job, f in futures.items()}


def dar_suite(args: argparse.Namespace) -> int:
    table_ = methods(args.quick)
    unknown = sorted(set(args.methods or []) - set(table_))
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}; choose from {', '.join(table_)}", file=sys.stderr)
        return 2
    chosen = {k: v for k, v in table_.items() if not args.methods or k in args.methods}
    res: dict = {"args": vars(args), "machine": machine(), "methods": {}}
    for name, (config, opts) in chosen.items():
        res["methods"][name] = {"config": config, "cfg_options": opts, "planned_cost": planned_cost(config, opts)}
        print(f"{name}: {config} {' '.join(opts)} -> planned cost {100 * res['methods'][name]['planned_cost']:.1f}%")
    runs = run_all([(name, *chosen[name], seed) for name in chosen for seed in args.seeds], Path(args.work_root),
                   args.jobs, args.force)
    for name in chosen:
        got = [runs[(name, s)] for s in args.seeds]
        res["methods"][name].update(top1=[g["top1"] for g in got], cost_samples=[g["relative_cost_samples"] for g in got],
                                    cost_flops=[g["relative_cost_flops"] for g in got], wall_s=[g["wall_s"] for g in got])
    res["report"] = report(res)
    print(res["report"])
    print(f"results: {write_json(args.out, res)}")
    return 0


# -- the literature suite: each method at its achieved cost against FLOPs-matched controls -----------
def achieved_profile(work_dir: Path) -> tuple[list[float], float]:
    """A finished method run's FLOPs per epoch relative to a full-data epoch (selection passes included),
    and its whole-run relative FLOPs -- what the controls must spend (the method trains every epoch of
    the baseline, so the run's own epochs are the baseline's)."""
    from dar_common.workdir import read_log

    lines = [x for x in read_log(work_dir) or [] if x.get("type") == "epoch"]
    if not lines:
        raise RuntimeError(f"{work_dir}: no epoch lines in log.jsonl")
    per_sample = lines[0]["train_flops"] / lines[0]["trained_samples"]  # 3 x forward FLOPs of one sample
    full = [per_sample * x["dataset_size"] for x in lines]
    spent = [x["train_flops"] + selection_flops(x, per_sample) for x in lines]
    return [f / u for f, u in zip(spent, full, strict=True)], sum(spent) / sum(full)


def selection_flops(line: dict, per_sample: float) -> float:
    """An epoch's selection FLOPs; a KAKURENBO refresh pass the trainer did not count (forwards made in
    ``end_epoch`` missed the epoch's sum before the trainer's fix) is added here: a forward is 1/3 of a
    trained sample."""
    counted = line["selection_flops"]
    refresh = line.get("refreshed", 0) * per_sample / 3
    return counted if counted >= 0.5 * refresh else counted + refresh


def control_jobs(method: str, seed: int, work_root: Path, quick: bool) -> list[tuple[str, str, list[str], int]]:
    """The RS2, random-drop and shortened controls of one finished method run, at that run's FLOPs."""
    fractions, cost = achieved_profile(work_root / f"{method}_s{seed}")
    fixed = [f"{min(1.0, f):.6f}" for f in fractions]  # a method never spends more than a full epoch here
    extra = QUICK if quick else []
    return [(f"{method}-rs2", "tiny_digits_rs2.py",
             extra + ["method.budget=None", f"method.fractions=[{','.join(fixed)}]"], seed),
            (f"{method}-random", "tiny_digits_random_drop.py",
             extra + ["method.budget=None", f"method.fractions=[{','.join(fixed)}]"], seed),
            (f"{method}-shortened", "tiny_digits_shortened.py",
             extra + ["method.match=None", f"method.budget={min(1.0, cost):.6f}"], seed)]


def literature_suite(args: argparse.Namespace) -> int:
    table_ = literature()
    names = list(table_)
    unknown = sorted(set(args.methods or []) - set(names) - {"uniform"})
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}; choose from uniform, {', '.join(names)}",
              file=sys.stderr)
        return 2
    chosen = [m for m in names if not args.methods or m in args.methods]
    if args.quick and not args.methods:
        chosen = chosen[:1]
    extra = QUICK if args.quick else []
    work_root = Path(args.work_root)
    first = [("uniform", "tiny_digits_uniform.py", extra, s) for s in args.seeds]
    first += [(m, table_[m], extra, s) for m in chosen for s in args.seeds]
    res: dict = {"args": vars(args), "machine": machine(), "methods": {}, "comparisons": []}
    for name, config, opts, _ in first[:: len(args.seeds)]:
        res["methods"][name] = {"config": config, "cfg_options": opts, "planned": planned_cost(config, opts)}
    runs: dict = {}
    with ThreadPoolExecutor(args.jobs) as pool:  # a method's controls start as soon as its run is done
        pending = {pool.submit(train, n, c, o, s, work_root, args.force): (n, s) for n, c, o, s in first}
        while pending:
            done = next(as_completed(pending))
            name, seed = pending.pop(done)
            runs[(name, seed)] = done.result()
            if name in table_:
                for job in control_jobs(name, seed, work_root, args.quick):
                    res["methods"].setdefault(job[0], {"config": job[1], "cfg_options": "per seed: the method's cost",
                                                       "planned": None})
                    pending[pool.submit(train, job[0], job[1], job[2], job[3], work_root, args.force)] = (job[0], seed)
    order = ["uniform"] + [n for m in chosen for n in (m, *(f"{m}-{c}" for c in CONTROLS))]
    res["methods"] = {n: res["methods"][n] for n in order}
    for name in order:
        got = [runs[(name, s)] for s in args.seeds]
        res["methods"][name].update(top1=[g["top1"] for g in got], cost_samples=[g["relative_cost_samples"] for g in got],
                                    cost_flops=[g["relative_cost_flops"] for g in got], wall_s=[g["wall_s"] for g in got])
    res["report"] = literature_report(res, chosen)
    print(res["report"])
    out = Path(args.out)
    print(f"results: {write_json(out.with_name(out.stem + '_literature.json'), res)}")
    return 0


def literature_report(res: dict, chosen: list[str]) -> str:
    ms, rows = res["methods"], []
    for name, r in ms.items():
        m, s = mean_std(r["top1"])
        planned = r.get("planned")
        plan = "per seed (= the method's)" if planned is None else f"{100 * planned:.1f}%"
        rows.append([name, plan, f"{100 * np.mean(r['cost_samples']):.1f}%",
                     f"{100 * np.mean(r['cost_flops']):.1f}% ({100 * min(r['cost_flops']):.1f}-{100 * max(r['cost_flops']):.1f})",
                     f"{m:.2f} ± {s:.2f}", " ".join(f"{x:.1f}" for x in r["top1"])])
    lines = [table(["run", "planned (--dry-run; bound for loss-driven)", "trained samples", "FLOPs mean (range)",
                    "top-1 % mean ± std", "per seed"], rows), ""]
    verdict = []
    for m in chosen:
        row = [m, f"{100 * np.mean(ms[m]['cost_flops']):.1f}%", f"{np.mean(ms[m]['top1']):.2f}"]
        for ctrl in (*(f"{m}-{c}" for c in CONTROLS), "uniform"):
            text = paired(ms[m]["top1"], ms[ctrl]["top1"])
            res["comparisons"].append({"method": m, "control": ctrl, "result": text})
            lines.append(f"{m} - {ctrl}: {text} top-1 points (paired by seed)")
            row.append(short_paired(ms[m]["top1"], ms[ctrl]["top1"]))
        verdict.append(row)
    lines += ["", "verdict: method minus control, top-1 points, mean [95% CI] over paired seeds (RS2 = the control column)",
              table(["method", "FLOPs", "top-1 %", "- RS2", "- random_drop", "- shortened", "- uniform"], verdict)]
    return "\n".join(lines)


def short_paired(a: list[float], b: list[float]) -> str:
    """``mean [lo, hi]`` of the per-seed differences (95 % t interval; one seed: the difference alone)."""
    from scipy.stats import t as student

    d = np.asarray(a) - np.asarray(b)
    m, s = mean_std(d.tolist())
    if len(d) < 2:
        return f"{m:+.2f} (1 seed)"
    half = student.ppf(0.975, len(d) - 1) * s / np.sqrt(len(d))
    return f"{m:+.2f} [{m - half:+.2f}, {m + half:+.2f}]"


def main(args: argparse.Namespace) -> int:
    if args.quick:
        args.seeds = args.seeds[:1]
        if args.out == get_args_parser().get_default("out"):
            args.out, args.work_root = "work_dirs/bench/accuracy_quick.json", "work_dirs/bench/accuracy_quick"
    rc = 0
    if args.suite in ("dar", "all"):
        rc = dar_suite(args)
    if args.suite in ("literature", "all") and rc == 0:
        rc = literature_suite(args)
    return rc


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
