"""PNG plots that show what each pre-training method did and what it bought (matplotlib, Agg backend).

- ``kept_fraction.png``: fraction of the dataset trained per epoch, one line per method;
- ``accuracy_vs_cost.png``: top-1 and each transfer task's main metric against relative pre-training cost;
- ``dar_losses_<run>.png``: per DaR drop event, the recorded-loss distribution of kept vs dropped samples.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pretrain.workdir import atomic_path  # noqa: E402
from transfer.tasks import TASKS  # noqa: E402

from .results import GroupKey, PretrainRun, TransferRun, mean_std  # noqa: E402

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


def accuracy_vs_cost(pre: list[PretrainRun], tra: list[TransferRun], path: Path) -> Path | None:
    """One panel per metric: x = relative pre-training cost (samples), y = metric, error bar = seed std."""
    panels: list[tuple[str, dict[GroupKey, tuple[float, float | None]]]] = []
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
            ax.errorbar(k.cost * 100, m, yerr=s, fmt="o", color=colors[k], capsize=3, label=_label(k))
        ax.set(title=title, xlabel="pre-training cost (% of uniform samples)")
        ax.title.set_fontsize(9)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
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
    }
    seen: set[GroupKey] = set()
    for r in sorted(pre, key=lambda r: str(r.work_dir)):
        if r.selection_files and r.key not in seen:  # one per method: seeds look alike
            seen.add(r.key)
            out[f"dar_losses_{r.work_dir.name}"] = dar_losses(r, out_dir / f"dar_losses_{r.work_dir.name}.png")
    return {k: v for k, v in out.items() if v is not None}
