"""The "Rethinking ImageNet pre-training" view of a study: where a cheaper pre-training can tie at the end of
a full fine-tuning and still lose -- early in the schedule, with little data, with a frozen backbone, on the
localization-sensitive metric -- and whether the pre-training probes rank the methods as fine-tuning does.

- :func:`convergence_tables`: per recipe and setting, the headline metric at each validation of the
  fine-tuning (``metrics.json`` ``history``): mean ± std over seeds per method, Δ vs uniform with its paired
  interval at each point (the rows of :mod:`.results`, the intervals of :mod:`.stats`);
- :func:`summary_table`: one row per (recipe, method): Δ vs uniform of the headline metric at {first curve
  point, full schedule} x {smallest fraction, full data} x {frozen, fine-tuned} where those were run, and
  ΔAP50 / ΔAP75 for the detectors; scratch its own row;
- :func:`probe_agreement_table`: per recipe, Kendall's τ (scipy, with its p-value) between each probe
  metric -- at the end of pre-training and at a quarter of it -- and the fine-tuned headline metric, over all
  (method, seed) runs;
- :func:`curve_plots`: per recipe, the headline metric against fine-tuning iterations, a line per method
  (scratch included), mean ± std over seeds, a panel per setting.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfer.tasks import TASKS, Column

from .results import (
    SCRATCH,
    GroupKey,
    PretrainRun,
    Row,
    Table,
    TransferRun,
    _group,
    _order,
    _rows_for,
    baseline_of,
    method_labels,
    setting_label,
)
from .stats import PairedDiff, paired_diff

Recipe = tuple[str, str]  # (task, config name)


def headline(task: str) -> Column:
    """The metric a task is judged by: its first plot panel (box AP, keypoint AP, mIoU)."""
    return TASKS[task].panels[0]


def localization(task: str) -> tuple[Column, Column] | None:
    """AP50 and AP75 of the headline metric where the task reports them (the detectors)."""
    cols = {c.key: c for c in TASKS[task].columns}
    key = headline(task).key
    pair = cols.get(key + "_50"), cols.get(key + "_75")
    return (pair[0], pair[1]) if pair[0] and pair[1] else None


def recipes(tra: list[TransferRun]) -> dict[Recipe, list[TransferRun]]:
    out: dict[Recipe, list[TransferRun]] = {}
    for r in sorted(tra, key=lambda r: (list(TASKS).index(r.task), r.config_name)):
        out.setdefault((r.task, r.config_name), []).append(r)
    return out


def curve_iterations(runs: list[TransferRun]) -> list[int]:
    """The iterations validated by every run that has a curve (its points), in order."""
    sets = [{int(h["iter"]) for h in r.history} for r in runs if r.history]
    return sorted(set.intersection(*sets)) if sets else []


@dataclass
class _AtIteration:
    """A transfer run seen at one point of its curve, for the rows of :mod:`.results` (``value(key)`` reads
    the headline metric of the validation at iteration ``key``)."""
    run: TransferRun
    metric: str

    @property
    def key(self) -> GroupKey:
        return self.run.key

    @property
    def meta(self) -> dict[str, Any]:
        return self.run.meta

    @property
    def pair_seed(self) -> int | None:
        return self.run.pair_seed

    seed = pair_seed  # what the rows pair by

    def value(self, key: str) -> float | None:
        return self.run.value_at(int(key), self.metric)


def _settings(runs: list[TransferRun]) -> list[tuple[bool, float]]:
    return sorted({r.setting for r in runs}, key=lambda s: (s[0], -s[1]))


def convergence_tables(tra: list[TransferRun]) -> list[Table]:
    """Per recipe and setting with curves: the headline metric at each validation of the fine-tuning."""
    tables = []
    labels = method_labels(set(recipes(tra)))
    for (task, cfg), runs in recipes(tra).items():
        col = headline(task)
        for setting in _settings(runs):
            sub = [r for r in runs if r.setting == setting]
            its = curve_iterations(sub)
            if not its:
                continue
            columns = [Column(f"it {i}", str(i), col.scale) for i in its]
            rows = _rows_for(_group([_AtIteration(r, col.key) for r in sub if r.history]), columns,
                             lambda k: {"Pre-training": k.method, "Backbone": k.arch})
            tables.append(Table(f"{labels[task, cfg]} ({cfg}), {setting_label(*setting)}: {col.header} during "
                                "fine-tuning", ["Pre-training", "Backbone"], columns, rows,
                                f"{col.header} at each validation (fine-tuning iteration); Δ = method − uniform at the "
                                "same iteration, mean of the per-seed differences [paired 95% t interval]."))
    return tables


# ---- the summary --------------------------------------------------------------------------------------


def _values(runs: list[TransferRun], key: GroupKey, value) -> dict[int, float | None]:
    return {r.pair_seed: value(r) for r in runs if r.key == key and r.pair_seed is not None}


def _delta(runs: list[TransferRun], key: GroupKey, base: GroupKey, value) -> PairedDiff | None:
    return paired_diff(_values(runs, key, value), _values(runs, base, value))


def _fmt_diff(d: PairedDiff | None) -> str:
    if d is None:
        return "-"
    if d.low is None:
        return f"{d.mean:+.2f}"
    return f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]"


@dataclass
class Summary:
    """The "Rethinking" table: rendered cells (Markdown) with the paired differences behind them."""
    headers: list[str]
    rows: list[list[str]]
    diffs: list[dict[str, PairedDiff | None]]
    note: str

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines + ["", self.note]) + "\n"


def summary_columns(runs: list[TransferRun]) -> list[tuple[str, tuple[bool, float], str]]:
    """(header, setting, 'first'|'final') for one recipe's runs: {first curve point, full schedule} x
    {smallest fraction, full data} x {frozen, fine-tuned}, where run."""
    cols = []
    for frozen in (False, True):
        fracs = sorted({r.data_fraction for r in runs if r.frozen == frozen})
        for frac in dict.fromkeys([fracs[0], fracs[-1]] if fracs else []):
            sub = [r for r in runs if r.setting == (frozen, frac)]
            its = curve_iterations(sub)
            for point in (["first"] if its and its[0] != max(its) else []) + ["final"]:
                at = "first point" if point == "first" else "end"  # recipes differ in N: the cell says it
                cols.append((f"{setting_label(frozen, frac)}, {at}", (frozen, frac), point))
    return cols


def summary_table(tra: list[TransferRun]) -> Summary | None:
    """One row per (recipe, method other than uniform): Δ vs uniform of the headline metric per column of
    :func:`summary_columns`, and for detectors ΔAP50 / ΔAP75 (fine-tuned, full data, end of schedule)."""
    rows, diffs, headers = [], [], ["Recipe", "Pre-training"]
    all_cols: list[str] = []
    per_recipe = []
    labels = method_labels(set(recipes(tra)))
    for (task, cfg), runs in recipes(tra).items():
        cols = summary_columns(runs)
        loc = localization(task)
        names = [c[0] for c in cols] + ([f"Δ{loc[0].header}", f"Δ{loc[1].header}"] if loc else [])
        all_cols += [n for n in names if n not in all_cols]
        per_recipe.append((task, cfg, runs, cols, loc))
    if not per_recipe:
        return None
    headers += all_cols
    for task, cfg, runs, cols, loc in per_recipe:
        col = headline(task)
        keys = _order(list({r.key for r in runs}))
        for k in keys:
            if k.is_uniform and k == baseline_of(keys, k.arch):
                continue
            base = baseline_of(keys, k.arch)
            if base is None:
                continue
            cells: dict[str, PairedDiff | None] = {}
            where: dict[str, str] = {}  # a first point's iteration, written in its cell
            for name, setting, point in cols:
                sub = [r for r in runs if r.setting == setting]
                its = curve_iterations(sub)
                if point == "first":
                    cells[name] = _delta(sub, k, base, lambda r, i=its[0], c=col: _scaled(r.value_at(i, c.key), c))
                    where[name] = f"it {its[0]}: "
                else:
                    cells[name] = _delta(sub, k, base, lambda r, c=col: _scaled(r.value(c.key), c))
            if loc:
                full = [r for r in runs if r.setting == (False, 1.0)] or runs
                for c in loc:
                    cells[f"Δ{c.header}"] = _delta(full, k, base, lambda r, c=c: _scaled(r.value(c.key), c))
            label = k.method if not k.is_scratch else f"{SCRATCH} (no pre-training)"
            rows.append([labels[task, cfg], label] + [where.get(h, "") + _fmt_diff(cells.get(h)) if h in cells else ""
                                                      for h in all_cols])
            diffs.append(cells)
    note = ("Each cell: Δ = method − uniform of the headline metric (box AP, keypoint AP, mIoU; positive is better), "
            "mean of the per-seed differences [paired 95% t interval]; `first point` = the first validation of the "
            "fine-tuning (curve point; `it N` in the cell: its iteration, which differs between recipes), `end` = "
            "after the full schedule (the test). Pre-training's value should show "
            "early, with little data and with a frozen backbone; scratch − uniform is what pre-training buys. "
            "ΔAP50 vs ΔAP75 (detectors, fine-tuned, full data): a method that loses more at AP75 loses on "
            "localization.")
    return Summary(headers, rows, diffs, note)


def _scaled(v: float | None, col: Column) -> float | None:
    return None if v is None else v * col.scale


# ---- probe agreement ----------------------------------------------------------------------------------


def kendall(x: list[float], y: list[float]) -> tuple[float | None, float | None]:
    """Kendall's τ (tau-b) of paired values and its two-sided p-value (scipy); None where undefined (fewer
    than two pairs, or a constant side)."""
    from scipy import stats

    if len(x) < 2:
        return None, None
    res = stats.kendalltau(x, y)
    tau, p = float(res.statistic), float(res.pvalue)
    return (None, None) if math.isnan(tau) else (tau, None if math.isnan(p) else p)


def probe_at(run: PretrainRun, metric: str, quarter: bool = False) -> float | None:
    """The run's probe ``metric`` at the end of pre-training (its last probe line), or at a quarter of it:
    the last probe line at or before epoch ceil(epochs / 4) (None where there is none)."""
    lines = [p for p in run.probes if isinstance(p.get(metric), (int, float))]
    if quarter:
        epochs = run.summary.get("epochs") or max((int(e["epoch"]) for e in run.epochs), default=0)
        limit = math.ceil(int(epochs) / 4)
        lines = [p for p in lines if int(p.get("epoch", 0)) <= limit]
    return float(lines[-1][metric]) if lines else None


def probe_pairs(pre: list[PretrainRun], runs: list[TransferRun], metric: str, col: Column,
                quarter: bool = False) -> list[tuple[float, float]]:
    """(probe, fine-tuned headline metric) per (method, seed): each fine-tuned run (fine-tuned protocol, full
    data, not scratch) with the pre-training run of the same method key and seed."""
    by = {(r.key, r.seed): r for r in pre}
    out = []
    for t in runs:
        if t.is_scratch or t.setting != (False, 1.0):
            continue
        seed = t.backbone_meta.get("seed")
        p = by.get((t.key, None if seed is None else int(seed)))
        x = None if p is None else probe_at(p, metric, quarter)
        y = t.value(col.key)
        if x is not None and y is not None:
            out.append((x, y * col.scale))
    return out


def probe_agreement_table(pre: list[PretrainRun], tra: list[TransferRun]) -> Summary | None:
    """Per recipe and probe metric: Kendall's τ [p-value] between the probe (end, quarter of pre-training)
    and the fine-tuned headline metric over all (method, seed) runs."""
    from .plots import probe_metrics

    metrics = probe_metrics(pre)
    if not metrics:
        return None
    headers = ["Recipe", "Probe", "Runs", "τ (probe at end)", "p", "τ (probe at 1/4)", "p (1/4)"]
    rows, diffs = [], []
    labels = method_labels(set(recipes(tra)))
    for (task, cfg), runs in recipes(tra).items():
        col = headline(task)
        for m in metrics:
            end = probe_pairs(pre, runs, m, col)
            if not end:
                continue
            quarter = probe_pairs(pre, runs, m, col, quarter=True)
            t1, p1 = kendall(*map(list, zip(*end, strict=True)))
            t4, p4 = kendall(*map(list, zip(*quarter, strict=True))) if quarter else (None, None)
            rows.append([labels[task, cfg], f"{m} vs {col.header}", str(len(end)), _num(t1), _num(p1, 3),
                         _num(t4), _num(p4, 3)])
            diffs.append({})
    if not rows:
        return None
    return Summary(headers, rows, diffs,
                   "Kendall's τ-b (scipy.stats.kendalltau, two-sided p-value) over every (method, seed) pre-training "
                   "that was fine-tuned (full data, fine-tuned protocol): 1 = the probe ranks the runs exactly as "
                   "fine-tuning does, 0 = no agreement. With few runs only a τ near ±1 is more than chance; the "
                   "quarter column says whether the probe early in pre-training already ranks them. `-`: undefined "
                   "(fewer than two runs, or every run's probe equal -- e.g. DaR's first epochs are uniform's, "
                   "so are their early probes).")


def _num(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


# ---- curve plots --------------------------------------------------------------------------------------


def curve_plots(tra: list[TransferRun], out_dir: Path) -> dict[str, Path]:
    """Per recipe with curves: ``curves_<config>.png``, a panel per setting, a line per method (mean ± std
    over seeds of the headline metric against fine-tuning iterations; scratch dashed)."""
    from .plots import _colors, _save, plt
    from .stats import mean_std

    out: dict[str, Path] = {}
    for (task, cfg), runs in recipes(tra).items():
        col = headline(task)
        settings = [s for s in _settings(runs) if curve_iterations([r for r in runs if r.setting == s])]
        if not settings:
            continue
        keys = _order(list({r.key for r in runs}))
        colors = _colors(keys)
        width = 4.2 * len(settings) + 1
        fig, axes = plt.subplots(1, len(settings), figsize=(width, 3.4), squeeze=False)
        for ax, setting in zip(axes[0], settings, strict=True):
            sub = [r for r in runs if r.setting == setting]
            its = curve_iterations(sub)
            for k in keys:
                rs = [r for r in sub if r.key == k and r.history]
                if not rs:
                    continue
                stats = [mean_std([_scaled(r.value_at(i, col.key), col) for r in rs]) for i in its]
                xs = [i for i, s in zip(its, stats, strict=True) if s[0] is not None]
                m = [s[0] for s in stats if s[0] is not None]
                sd = [s[1] or 0.0 for s in stats if s[0] is not None]
                ax.plot(xs, m, marker="o", color=colors[k], linestyle="--" if k.is_scratch else "-",
                        label=f"{k.method} ({len(rs)} seed{'s' if len(rs) > 1 else ''})")
                ax.fill_between(xs, [a - b for a, b in zip(m, sd, strict=True)],
                                [a + b for a, b in zip(m, sd, strict=True)], color=colors[k], alpha=0.15)
            ax.set(title=setting_label(*setting), xlabel="fine-tuning iteration", ylabel=col.header)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        # wrapped to the figure (~8 characters an inch at suptitle size): one panel cut the title at both ends
        fig.suptitle(textwrap.fill(f"{cfg}: {col.header} during fine-tuning (mean ± std over seeds)",
                                   int(8 * width)))
        fig.tight_layout()
        out[f"curves_{cfg}"] = _save(fig, out_dir / f"curves_{cfg}.png")
    return out


__all__ = ["Row", "convergence_tables", "curve_plots", "kendall", "probe_agreement_table", "summary_table"]
