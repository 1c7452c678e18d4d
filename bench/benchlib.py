"""Shared helpers of the bench scripts: robust statistics, interleaving, machine description, output.

The machine these scripts run on is usually shared, so every comparison is made side by side: the
variants alternate within each repetition (in a shuffled order), and a ratio is formed per
repetition, so that a slow spell of the machine hits both sides of that ratio. We report the median
of those per-repetition ratios and their inter-quartile range.
"""
from __future__ import annotations

import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch


def summarize(values: Sequence[float]) -> dict:
    """Median, quartiles, inter-quartile range and count of ``values`` (NaNs dropped)."""
    v = np.asarray([x for x in values if x == x], dtype=np.float64)
    if v.size == 0:
        return {"median": float("nan"), "q1": float("nan"), "q3": float("nan"), "iqr": float("nan"), "n": 0}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1), "n": int(v.size)}


def fmt_ratio(s: dict, digits: int = 3) -> str:
    """``1.054 [1.041, 1.066]`` -- median and quartiles."""
    return f"{s['median']:.{digits}f} [{s['q1']:.{digits}f}, {s['q3']:.{digits}f}]"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = list(values)
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def interleaved(names: Sequence[str], reps: int, seed: int = 0) -> list[list[str]]:
    """``reps`` rounds, each running every variant once in a freshly shuffled order."""
    rng = random.Random(seed)
    rounds = []
    for _ in range(reps):
        order = list(names)
        rng.shuffle(order)
        rounds.append(order)
    return rounds


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def repeat_time(fn: Callable[[], object], reps: int, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` over ``reps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return [timed(fn) for _ in range(reps)]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """What the figures were measured on, including how busy the machine was."""
    import timm

    load = os.getloadavg()
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_avg_1_5_15": [round(x, 2) for x in load],
        "torch": torch.__version__,
        "timm": timm.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def write_json(path: str | Path, obj: dict) -> Path:
    """Write ``obj`` atomically (the work-dir contract's writer)."""
    from dar_common.workdir import atomic_write_json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, obj, indent=1, default=float)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
