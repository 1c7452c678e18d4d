"""Read pre-training and transfer work dirs and build the papers' comparison tables (DaR paper Tables 4-7).

One row per pre-training method per backbone (mean over seeds, ± std in Markdown when there are several),
each followed by a Δ row against the uniform (100%) baseline of the same backbone and downstream config:
Δ = row − baseline, so positive is better for AP/mIoU/accuracy and negative is better for error rates.
Runs are grouped by (backbone, method, method parameters) read from the pre-training's config and summary
or the backbone meta that transfer records in ``metrics.json`` (without parameters: the relative cost in
samples stands for them). Not by the achieved cost: that of a loss-driven method differs by seed. A transfer run without a backbone file
(``--backbone none``: a randomly initialised backbone) is the ``scratch`` row, set apart at the bottom of
its block, with its own Δ row (scratch − uniform: what pre-training buys). Δ rows pair the runs by seed
and carry a paired 95% t interval (:mod:`.stats`).
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dar_common.workdir import atomic_write_text, read_log, read_metrics
from transfer.tasks import TABLES, TASKS, Column, recipe_label, table_columns, table_tasks

from .stats import PairedDiff, mean_std, paired_diff

SCRATCH = "scratch"  # the method name of a fine-tuning from a randomly initialised backbone
CLS_COLUMNS = [Column("top-1 err", "top1_err"), Column("top-5 err", "top5_err")]


@dataclass(frozen=True, order=True)
class GroupKey:
    """What makes runs comparable repeats of one another (seeds differ, nothing else)."""
    arch: str
    method: str
    variant: str  # the method's parameters (canonical JSON), or the rounded cost where they are not recorded
    cost: float = field(default=1.0, compare=False)  # relative cost in samples, rounded to 0.1% (ordering only)

    @property
    def is_uniform(self) -> bool:
        return self.method == "uniform"

    @property
    def is_scratch(self) -> bool:
        return self.method == SCRATCH


BN_SUFFIX = "+bn"  # a backbone whose BatchNorm statistics were recalibrated is its own row ("dar+bn")


def group_key(meta: dict[str, Any]) -> GroupKey:
    """What a run repeats: architecture, method (with ``+bn`` after BN recalibration) and its parameters."""
    cost = meta.get("relative_cost_samples")
    cost = round(float(cost), 3) if cost is not None else 1.0
    method = str(meta.get("method")) + (BN_SUFFIX if meta.get("bn_recalibrate") else "")
    params = meta.get("method_params")
    variant = f"cost={cost}" if params is None else json.dumps(params, sort_keys=True, default=str)
    return GroupKey(str(meta.get("arch")), method, variant, cost)


def scratch_meta(arch: str | None) -> dict[str, Any]:
    """What stands for the backbone meta of a randomly initialised backbone: no pre-training, no cost."""
    return {"arch": arch, "method": SCRATCH, "relative_cost_samples": 0.0, "relative_cost_flops": 0.0}


@dataclass
class PretrainRun:
    work_dir: Path
    summary: dict[str, Any]
    epochs: list[dict[str, Any]]
    probes: list[dict[str, Any]] = field(default_factory=list)  # ``probe`` lines of log.jsonl

    @property
    def key(self) -> GroupKey:
        # the summary line does not say whether BN was recalibrated; the last epoch line does
        bn = next((e["bn_recalibrate"] for e in reversed(self.epochs) if e.get("bn_recalibrate")), None)
        return group_key({**self.summary, "bn_recalibrate": bn, "method_params": self.method_params})

    @property
    def method_params(self) -> dict[str, Any] | None:
        """The method section of the config dumped beside the log, less its type: what publishing records
        as ``method_params`` (pretrain.checkpoint.make_meta); None where there is no readable dump."""
        config = self.config
        if config is None or not isinstance(config.get("method"), dict):
            return None
        return {k: v for k, v in config["method"].items() if k != "type"}

    @cached_property
    def config(self) -> dict[str, Any] | None:
        """The config dumped beside the log, read once; None where there is none or it does not parse
        (that costs only the pairing by seed and the grouping by parameters)."""
        if not (self.work_dir / "config.py").is_file():
            return None
        from mmengine.config import Config

        try:
            return Config.fromfile(str(self.work_dir / "config.py")).to_dict()
        except Exception:  # noqa: BLE001 - an unreadable dump: see above
            return None

    @property
    def seed(self) -> int | None:
        """The run's seed: the summary's, else the ``seed`` of the config dumped beside it (the summary line
        does not carry it), else None (then the run pairs with nothing)."""
        seed = self.summary.get("seed")
        if seed is None and self.config is not None:
            seed = self.config.get("seed")
        return None if seed is None else int(seed)

    @property
    def selection_files(self) -> list[Path]:
        return sorted((self.work_dir / "selection").glob("epoch_*.npz"))

    def value(self, key: str) -> float | None:
        if key.endswith("_err"):
            acc = self.summary.get(key[:-4])
            return None if acc is None else 100.0 - float(acc)
        v = self.summary.get(key)
        return None if v is None else float(v)


@dataclass
class TransferRun:
    work_dir: Path
    task: str
    config: str
    metrics: dict[str, float]
    backbone_meta: dict[str, Any] = field(default_factory=dict)
    backbone: str | None = "?"  # the weights file fine-tuned from; None: random initialisation (scratch)
    seed: int | None = None  # the fine-tuning seed
    arch: str | None = None  # the backbone architecture the config builds (recorded for scratch runs)
    history: list[dict[str, Any]] = field(default_factory=list)  # validations during fine-tuning (the curve)
    protocol: str | None = None  # "frozen" (no backbone parameter trained) or "finetune"; None: not recorded
    data_fraction: float = 1.0  # the fraction of the training images fine-tuned on

    @property
    def is_scratch(self) -> bool:
        return self.backbone is None

    @property
    def frozen(self) -> bool:
        return self.protocol == "frozen"

    @property
    def setting(self) -> tuple[bool, float]:
        """What besides the method tells runs of one recipe apart: (frozen, data fraction)."""
        return self.frozen, self.data_fraction

    def value_at(self, iteration: int, key: str) -> float | None:
        """A metric of the validation at ``iteration`` of the curve (None where there was none)."""
        point = next((h for h in self.history if int(h.get("iter", -1)) == iteration), None)
        return None if point is None else _metric(point.get("metrics") or {}, key)

    @property
    def meta(self) -> dict[str, Any]:
        """The backbone meta, or what stands for it on a scratch run."""
        return scratch_meta(self.arch) if self.is_scratch else self.backbone_meta

    @property
    def key(self) -> GroupKey:
        return group_key(self.meta)

    @property
    def pair_seed(self) -> int | None:
        """The seed that pairs this run with the baseline's: the fine-tuning seed, else the pre-training one."""
        seed = self.seed if self.seed is not None else self.backbone_meta.get("seed")
        return None if seed is None else int(seed)

    @property
    def config_name(self) -> str:
        return Path(self.config).stem if self.config else self.task

    def value(self, key: str) -> float | None:
        """A metric by name, with or without the toolbox prefix ("coco/bbox_mAP" or "bbox_mAP")."""
        return _metric(self.metrics, key)


def _metric(metrics: dict[str, Any], key: str) -> float | None:
    for name, v in metrics.items():
        if name == key or name.split("/", 1)[-1] == key:
            return None if v is None or float(v) < 0 else float(v)  # COCO writes -1 for "no such objects"
    return None


def setting_label(frozen: bool, fraction: float) -> str:
    """A transfer setting as the tables print it: ``fine-tuned, 100% data`` / ``frozen, 10% data``."""
    return f"{'frozen' if frozen else 'fine-tuned'}, {fraction * 100:g}% data"


def load_pretrain_run(work_dir: str | Path) -> PretrainRun | None:
    """A finished pre-training work dir (``log.jsonl`` with a summary record), else None."""
    recs = read_log(work_dir) or []
    summaries = [r for r in recs if r.get("type") == "summary"]
    if not summaries:
        return None
    return PretrainRun(Path(work_dir), summaries[-1], [r for r in recs if r.get("type") == "epoch"],
                       [r for r in recs if r.get("type") == "probe"])


def load_transfer_run(work_dir: str | Path) -> TransferRun | None:
    """A tested transfer work dir (``metrics.json``), else None."""
    d = read_metrics(work_dir)
    if d is None:
        return None
    subset = d.get("data_subset") or {}
    return TransferRun(Path(work_dir), d["task"], d.get("config") or "", d.get("metrics") or {},
                       d.get("backbone_meta") or {}, d.get("backbone"), d.get("seed"), d.get("arch"),
                       list(d.get("history") or []), d.get("protocol"), float(subset.get("fraction", 1.0)))


def discover(paths: list[str | Path]) -> tuple[list[PretrainRun], list[TransferRun]]:
    """Find pre-training and transfer work dirs at or below each path."""
    pre: list[PretrainRun] = []
    tra: list[TransferRun] = []
    for root in paths:
        for dirpath, dirnames, _ in os.walk(root):
            run = load_transfer_run(dirpath)
            if run is not None:
                tra.append(run)
                dirnames.clear()
                continue
            prun = load_pretrain_run(dirpath)
            if prun is not None:
                pre.append(prun)
                dirnames.clear()
            dirnames.sort()
    return pre, tra


# ---- aggregation and tables -------------------------------------------------------------------------


@dataclass
class Row:
    labels: dict[str, str]  # leading text columns
    values: dict[str, float | None]  # metric header -> mean (for Δ rows: difference)
    stds: dict[str, float | None] = field(default_factory=dict)
    cis: dict[str, PairedDiff | None] = field(default_factory=dict)  # Δ rows: the paired interval per metric
    cost: float | None = None  # relative cost in samples (Δ rows: difference)
    cost_flops: float | None = None
    runs: int = 0
    delta: bool = False
    divider: str = ""  # a row that only says what follows (the scratch rows are set apart by one)


@dataclass
class Table:
    title: str
    label_headers: list[str]
    columns: list[Column]
    rows: list[Row]
    note: str = ""


def _group(runs: list[Any]) -> dict[GroupKey, list[Any]]:
    out: dict[GroupKey, list[Any]] = {}
    for r in runs:
        out.setdefault(r.key, []).append(r)
    return out


def _order(keys: list[GroupKey]) -> list[GroupKey]:
    """Per backbone: the uniform baseline (highest-cost uniform) first, then by cost descending, scratch last."""
    def rank(k: GroupKey) -> tuple[Any, ...]:
        return (k.arch, k.is_scratch, not k.is_uniform, -k.cost, k.method)
    return sorted(keys, key=rank)


def baseline_of(keys: list[GroupKey], arch: str) -> GroupKey | None:
    uni = [k for k in keys if k.arch == arch and k.is_uniform]
    return max(uni, key=lambda k: k.cost) if uni else None


def _rows_for(groups: dict[GroupKey, list[Any]], columns: list[Column], labels_of) -> list[Row]:
    """Mean rows per group, each non-baseline group followed by its Δ row against the baseline."""
    rows: dict[GroupKey, Row] = {}
    for k, runs in groups.items():
        stats = {c.header: mean_std([_scaled(r, c) for r in runs]) for c in columns}
        metas = [r.summary if isinstance(r, PretrainRun) else r.meta for r in runs]
        rows[k] = Row(labels_of(k), {h: s[0] for h, s in stats.items()}, {h: s[1] for h, s in stats.items()},
                      cost=mean_std([_f(m.get("relative_cost_samples")) for m in metas])[0],
                      cost_flops=mean_std([_f(m.get("relative_cost_flops")) for m in metas])[0], runs=len(runs))
    out: list[Row] = []
    keys = _order(list(groups))
    for k in keys:
        if k.is_scratch:
            out.append(Row({}, {}, divider=f"no pre-training ({k.arch}, random initialisation):"))
        out.append(rows[k])
        base = baseline_of(keys, k.arch)
        if base is None or base == k:
            continue
        b, r = rows[base], rows[k]
        cis = {c.header: paired_diff(_by_seed(groups[k], c), _by_seed(groups[base], c)) for c in columns}
        out.append(Row({**r.labels, "Pre-training": f"Δ {k.method}"},
                       {h: cis[h].mean if cis[h] else _sub(r.values[h], b.values[h]) for h in r.values},
                       cis=cis, cost=_sub(r.cost, b.cost), cost_flops=_sub(r.cost_flops, b.cost_flops),
                       runs=max((ci.n for ci in cis.values() if ci), default=0), delta=True))
    return out


def _by_seed(runs: list[Any], col: Column) -> dict[int, float | None]:
    """Seed -> value of one metric (runs without a seed cannot be paired and are left out)."""
    seeds = [getattr(r, "pair_seed", None) if isinstance(r, TransferRun) else r.seed for r in runs]
    return {s: _scaled(r, col) for s, r in zip(seeds, runs, strict=True) if s is not None}


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _scaled(run: Any, col: Column) -> float | None:
    v = run.value(col.key)
    return None if v is None else v * col.scale


def classification_table(runs: list[PretrainRun]) -> Table:
    """DaR paper Table 4 shape: single-crop top-1/top-5 error and pre-training cost per method."""
    groups = _group(runs)
    rows = _rows_for(groups, CLS_COLUMNS, lambda k: {"Pre-training": k.method, "Backbone": k.arch})
    dataset = next((r.summary.get("dataset") for r in runs if r.summary.get("dataset")), None)
    return Table(f"Classification{f' ({dataset})' if dataset else ''}: single-crop error (%)",
                 ["Pre-training", "Backbone"], CLS_COLUMNS, rows,
                 "Δ = method − uniform of the same backbone (negative error is better), mean of the per-seed "
                 "differences [paired 95% t interval] when two or more seeds pair up.")


def method_labels(configs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The "Method" label of each (task, config name) in one table: the recipe's name (``FPN``,
    ``RetinaNet``, ...), the task's reference recipe for a config of unknown name that is alone in its
    task, else the config name -- and the config name wherever two configs would share a label."""
    per_task: dict[str, int] = {}
    for task, _ in configs:
        per_task[task] = per_task.get(task, 0) + 1
    labels = {(task, cfg): recipe_label(task, cfg) or (TASKS[task].reference.label if per_task[task] == 1 else cfg)
              for task, cfg in configs}
    values = list(labels.values())
    return {k: (k[1] if values.count(v) > 1 else v) for k, v in labels.items()}


def transfer_table(name: str, runs: list[TransferRun]) -> Table | None:
    """DaR paper Tables 5 (det/ins), 6 (pose) and 7 (seg) shape; None when no run goes to that table."""
    tasks, columns = table_tasks(name), list(table_columns(name))
    runs = [r for r in runs if r.task in tasks]
    if not runs:
        return None
    configs = {(r.task, r.config_name) for r in runs}
    labels = method_labels(configs)
    settings = {r.setting for r in runs}
    show = settings != {(False, 1.0)}  # a "Setting" column only where frozen runs or data fractions exist
    rows: list[Row] = []
    # Order by (task, config) so FPN rows come before Mask R-CNN rows, as in Table 5; then fine-tuned before
    # frozen, full data first: each block has its own uniform baseline and Δ rows.
    blocks = {(r.task, r.config_name, *r.setting) for r in runs}
    for task, cfg, frozen, frac in sorted(blocks, key=lambda t: (tasks.index(t[0]), t[1], t[2], -t[3])):
        sub = [r for r in runs if (r.task, r.config_name, *r.setting) == (task, cfg, frozen, frac)]
        extra = {"Setting": setting_label(frozen, frac)} if show else {}
        rows += _rows_for(_group(sub), columns, lambda k, n=labels[task, cfg], e=extra: {
            "Method": n, **e, "Pre-training": k.method, "Backbone": k.arch})
    columns = [c for c in columns if any(row.values.get(c.header) is not None for row in rows)]
    label_headers = ["Method", *(["Setting"] if show else []), "Pre-training", "Backbone"]
    return Table(TABLES[name].title, label_headers, columns, rows,
                 "Δ = method − uniform of the same backbone and downstream config (positive is better): the mean "
                 "of the per-seed differences [paired 95% t interval]. `scratch` fine-tunes the same recipe from a "
                 "randomly initialised backbone; Δ scratch is what pre-training buys (negative: it helps).")


def collect(pre: list[PretrainRun], tra: list[TransferRun]) -> dict[str, Table]:
    """All tables that have data, keyed 'cls' and the transfer tables' names (det, pose, seg)."""
    tables: dict[str, Table] = {}
    if pre:
        tables["cls"] = classification_table(pre)
    for name in TABLES:
        t = transfer_table(name, tra)
        if t is not None:
            tables[name] = t
    return tables


# ---- rendering ---------------------------------------------------------------------------------------


def _fmt(v: float | None, std: float | None = None, signed: bool = False, ci: PairedDiff | None = None) -> str:
    if v is None:
        return "-"
    s = f"{v:+.2f}" if signed else f"{v:.2f}"
    if ci is not None and ci.low is not None:
        return f"{s} [{ci.low:+.2f}, {ci.high:+.2f}]"
    return s + (f" ± {std:.2f}" if std is not None else "")


def _fmt_cost(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v * 100:+.0f}%" if signed else f"{v * 100:.0f}%"


def _cells(t: Table, row: Row) -> list[str]:
    if row.divider:
        return [f"**{row.divider}**"] + [""] * (len(headers(t)) - 1)
    runs = (f"{row.runs} pairs" if row.runs else "") if row.delta else str(row.runs)
    return ([row.labels[h] for h in t.label_headers]
            + [_fmt_cost(row.cost, row.delta), _fmt_cost(row.cost_flops, row.delta), runs]
            + [_fmt(row.values.get(c.header), None if row.delta else row.stds.get(c.header), row.delta,
                    row.cis.get(c.header)) for c in t.columns])


def headers(t: Table) -> list[str]:
    return t.label_headers + ["Cost (samples)", "Cost (FLOPs)", "Runs"] + [c.header for c in t.columns]


def to_markdown(t: Table) -> str:
    hs = headers(t)
    lines = [f"**{t.title}**", "", "| " + " | ".join(hs) + " |", "|" + "|".join("---" for _ in hs) + "|"]
    for row in t.rows:
        cells = _cells(t, row)
        if row.delta:
            cells = [f"*{c}*" if c and c != "-" else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    if t.note:
        lines += ["", t.note]
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    """Numbers unformatted (means, or differences on Δ rows); costs as fractions. Each metric has a ``±``
    column beside it: the sample std on mean rows, the paired 95% interval's half-width on Δ rows."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["Row"] + headers(t) + [f"{c.header} ±" for c in t.columns])
    for row in t.rows:
        if row.divider:
            continue
        spread = [row.cis[c.header].half_width if row.cis.get(c.header) else None for c in t.columns] if row.delta \
            else [row.stds.get(c.header) for c in t.columns]
        w.writerow(["delta" if row.delta else "mean"] + [row.labels[h] for h in t.label_headers]
                   + [_csv(row.cost), _csv(row.cost_flops), row.runs or ""]
                   + [_csv(row.values.get(c.header)) for c in t.columns] + [_csv(v) for v in spread])
    return buf.getvalue()


def _csv(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def write_tables(tables: dict[str, Table], out_dir: str | Path) -> dict[str, Path]:
    """Write ``<name>.md`` and ``<name>.csv`` per table; return the Markdown paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, t in tables.items():
        atomic_write_text(out_dir / f"{name}.csv", to_csv(t))
        written[name] = atomic_write_text(out_dir / f"{name}.md", to_markdown(t))
    return written
