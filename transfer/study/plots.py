"""PNG plots that show what each pre-training method did and what it bought (matplotlib, Agg backend).

- ``kept_fraction.png``: fraction of the dataset trained per epoch, one line per method;
- ``accuracy_vs_cost.png``: top-1 and each transfer task's main metric against relative pre-training cost in
  FLOPs (the cost the papers compare), error bars = sample std over seeds, the scratch fine-tuning (no
  pre-training) as a dashed line with its std band;
- ``probes.png``: the transfer probes measured during pre-training (``probe`` lines of log.jsonl) against
  epoch and against the pre-training FLOPs spent so far, one line per method (mean ± std over seeds);
- ``dar_losses_<run>.png``: per DaR drop event, the recorded-loss distribution of kept vs dropped samples.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dar_common.workdir import atomic_path  # noqa: E402
from transfer.tasks import TASKS  # noqa: E402

from .results import GroupKey, PretrainRun, TransferRun  # noqa: E402
from .stats import mean_std  # noqa: E402

MAX_LOSS_PANELS = 6


def _label(k: GroupKey) -> str:
    return f"{k.method} {k.arch}"


def _colors(keys: list[GroupKey]) -> dict[GroupKey, str]:
    methods = sorted({k.method for k in keys})
    cmap = plt.get_cmap("tab10")
    by_method = {m: cmap(i % 10) for i, m in enumerate(methods)}
    return {k: by_method[k.method] for k in keys}


def kept_fraction(runs: list[PretrainRun], path: Path) -> Path | None:
    """Kept fraction per epoch, mean over the seeds of each method."""
    groups: dict[GroupKey, list[PretrainRun]] = {}
    for r in runs:
        if r.epochs:
            groups.setdefault(r.key, []).append(r)
    if not groups:
        return None
    colors = _colors(list(groups))
    styles = ["-", "--", ":", "-."]  # methods on the same schedule (DaR vs random-drop) overlap exactly
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (k, rs) in enumerate(sorted(groups.items())):
        per_epoch: dict[int, list[float]] = {}
        for r in rs:
            for e in r.epochs:
                per_epoch.setdefault(int(e["epoch"]), []).append(float(e["kept_fraction"]))
        ep = sorted(per_epoch)
        ax.step(ep, [np.mean(per_epoch[x]) for x in ep], where="mid", color=colors[k], marker=".",
                linestyle=styles[i % len(styles)], linewidth=2.5 - 0.5 * (i % 3), label=f"{_label(k)} ({k.cost:.0%})")
    ax.set(xlabel="epoch", ylabel="kept fraction of the dataset", ylim=(0, 1.05),
           title="Samples trained per epoch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _points(runs: list, value) -> dict[GroupKey, tuple[float, float | None]]:
    groups: dict[GroupKey, list] = {}
    for r in runs:
        groups.setdefault(r.key, []).append(r)
    out = {}
    for k, rs in groups.items():
        m, s = mean_std([value(r) for r in rs])
        if m is not None:
            out[k] = (m, s)
    return out


def _flops_cost(runs: list) -> dict[GroupKey, float]:
    """Relative pre-training cost in FLOPs per group (samples where a run has no FLOP count)."""
    out: dict[GroupKey, list[float]] = {}
    for r in runs:
        meta = r.summary if isinstance(r, PretrainRun) else r.meta
        cost = meta.get("relative_cost_flops", meta.get("relative_cost_samples"))
        if cost is not None:
            out.setdefault(r.key, []).append(float(cost))
    return {k: float(np.mean(v)) for k, v in out.items()}


def accuracy_vs_cost(pre: list[PretrainRun], tra: list[TransferRun], path: Path) -> Path | None:
    """One panel per metric: x = relative pre-training cost (FLOPs), y = metric, error bar = seed std; the
    scratch fine-tuning (no pre-training) is a dashed line with a band of ± its std."""
    panels: list[tuple[str, dict[GroupKey, tuple[float, float | None]]]] = []
    costs = _flops_cost(pre) | _flops_cost(tra)
    if pre:
        panels.append(("classification top-1 (%)", _points(pre, lambda r: r.value("top1"))))
    for task in TASKS.values():
        for cfg in sorted({r.config_name for r in tra if r.task == task.name}):
            sub = [r for r in tra if r.task == task.name and r.config_name == cfg]
            for m in task.panels:
                panels.append((f"{task.name}: {m.header} ({cfg})",
                               _points(sub, lambda r, k=m.key, s=m.scale: None if r.value(k) is None else r.value(k) * s)))
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    colors = _colors([k for _, pts in panels for k in pts])
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
    for ax, (title, pts) in zip(axes.flat, panels, strict=False):
        for k, (m, s) in sorted(pts.items()):
            if k.is_scratch:
                ax.axhline(m, color=colors[k], linestyle="--", linewidth=1.2, label=_label(k))
                if s:
                    ax.axhspan(m - s, m + s, color=colors[k], alpha=0.12, linewidth=0)
                continue
            ax.errorbar(costs.get(k, k.cost) * 100, m, yerr=s, fmt="o", color=colors[k], capsize=3,
                        label=_label(k))
        ax.set(title=title, xlabel="pre-training cost (% of uniform FLOPs)")
        ax.title.set_fontsize(9)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = {}, []
    for ax in axes.flat:  # the union: the classification panel has no scratch line
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(fig, path)


# Fields of a probe line that say when and at what cost it ran, not what it measured (H7's schema).
_PROBE_BOOKKEEPING = ("probe_", "cum_", "relative_cost")


def probe_metrics(runs: list[PretrainRun]) -> list[str]:
    """The numeric metrics the runs' probe lines hold, in first-seen order (bookkeeping fields left out)."""
    names: list[str] = []
    for r in runs:
        for p in r.probes:
            for k, v in p.items():
                if (k not in names and not k.startswith(_PROBE_BOOKKEEPING) and k not in ("epoch", "global_step")
                        and isinstance(v, (int, float)) and not isinstance(v, bool)):
                    names.append(k)
    return names


def probes(runs: list[PretrainRun], path: Path) -> Path | None:
    """Per probe metric: value against epoch and against the method's pre-training cost so far (the probe
    line's ``relative_cost_flops``: FLOPs over a full uniform run's), mean ± std over seeds per method;
    None when no run has probes."""
    runs = [r for r in runs if r.probes]
    metrics = probe_metrics(runs)
    if not metrics:
        return None
    groups: dict[GroupKey, list[PretrainRun]] = {}
    for r in runs:
        groups.setdefault(r.key, []).append(r)
    colors = _colors(list(groups))
    with_cost = any(p.get("relative_cost_flops") is not None for r in runs for p in r.probes)
    ncol = 2 if with_cost else 1
    fig, axes = plt.subplots(len(metrics), ncol, figsize=(4.6 * ncol, 3.2 * len(metrics)), squeeze=False)
    for row, name in zip(axes, metrics, strict=True):
        for k, rs in sorted(groups.items()):
            per_epoch: dict[int, list[tuple[float, float | None]]] = {}
            for r in rs:
                for p in r.probes:
                    if isinstance(p.get(name), (int, float)) and "epoch" in p:
                        per_epoch.setdefault(int(p["epoch"]), []).append((float(p[name]), p.get("relative_cost_flops")))
            if not per_epoch:
                continue
            ep = sorted(per_epoch)
            mean = [np.mean([v for v, _ in per_epoch[e]]) for e in ep]
            std = [np.std([v for v, _ in per_epoch[e]], ddof=1) if len(per_epoch[e]) > 1 else 0.0 for e in ep]
            row[0].errorbar(ep, mean, yerr=std, color=colors[k], marker=".", capsize=2, label=_label(k))
            if with_cost:
                cost = [100 * np.mean([c for _, c in per_epoch[e] if c is not None] or [np.nan]) for e in ep]
                row[1].errorbar(cost, mean, yerr=std, color=colors[k], marker=".", capsize=2, label=_label(k))
        row[0].set(xlabel="epoch", ylabel=name, title=f"probe: {name}")
        if with_cost:
            row[1].set(xlabel="pre-training cost so far (% of uniform FLOPs)", ylabel=name, title=f"probe: {name} vs cost")
        for ax in row:
            ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def loss_split(npz: Path) -> tuple[np.ndarray, np.ndarray]:
    """(losses of kept samples, losses of dropped samples) among those trained in that epoch."""
    with np.load(npz) as d:
        losses, kept = d["losses"].astype(np.float64), d["kept"].astype(bool)
    trained = ~np.isnan(losses)
    return losses[trained & kept], losses[trained & ~kept]


def dar_losses(run: PretrainRun, path: Path) -> Path | None:
    """Histograms of kept vs dropped recorded losses at up to MAX_LOSS_PANELS drop events."""
    files = run.selection_files
    if not files:
        return None
    if len(files) > MAX_LOSS_PANELS:  # evenly spaced events, first and last included
        files = [files[i] for i in np.linspace(0, len(files) - 1, MAX_LOSS_PANELS).round().astype(int)]
    ncol = min(3, len(files))
    nrow = -(-len(files) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
    for ax, f in zip(axes.flat, files, strict=False):
        kept, dropped = loss_split(f)
        bins = _loss_bins(np.concatenate([kept, dropped]))
        kept, dropped = np.clip(kept, bins[0], None), np.clip(dropped, bins[0], None)  # a 0 loss joins bin 1
        ax.hist([kept, dropped], bins=bins, histtype="stepfilled",
                alpha=0.55, color=["tab:red", "tab:blue"], label=[f"kept ({kept.size})", f"dropped ({dropped.size})"])
        title = f"epoch {int(f.stem.split('_')[-1])}" + (" (refresh: all kept)" if dropped.size == 0 else "")
        ax.set(title=title, xlabel="recorded training loss", ylabel="samples", xscale="log")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(files):]:
        ax.axis("off")
    fig.suptitle(f"DaR drop events: {run.work_dir.name}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _loss_bins(losses: np.ndarray, n: int = 30) -> np.ndarray:
    """Log-spaced bins: cross-entropy losses pile up near 0 with a long tail of hard samples."""
    pos = losses[losses > 0]
    lo, hi = (pos.min(), pos.max()) if pos.size else (1e-3, 1.0)
    hi = max(hi, lo * 10)
    return np.geomspace(lo, hi, n)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path


def draw_all(pre: list[PretrainRun], tra: list[TransferRun], out_dir: str | Path) -> dict[str, Path]:
    """Draw every plot that has data; return name -> PNG path."""
    out_dir = Path(out_dir)
    out: dict[str, Path | None] = {
        "kept_fraction": kept_fraction(pre, out_dir / "kept_fraction.png"),
        "accuracy_vs_cost": accuracy_vs_cost(pre, tra, out_dir / "accuracy_vs_cost.png"),
        "probes": probes(pre, out_dir / "probes.png"),
    }
    seen: set[GroupKey] = set()
    for r in sorted(pre, key=lambda r: str(r.work_dir)):
        if r.selection_files and r.key not in seen:  # one per method: seeds look alike
            seen.add(r.key)
            out[f"dar_losses_{r.work_dir.name}"] = dar_losses(r, out_dir / f"dar_losses_{r.work_dir.name}.png")
    return {k: v for k, v in out.items() if v is not None}
