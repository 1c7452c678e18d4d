"""The report folder: tables (Markdown + CSV), plots (PNG) and ``report.md`` embedding both."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import yaml

from dar_common.workdir import atomic_write_text
from transfer.tasks import TABLES

from .plots import draw_all
from .progress import fmt_s
from .results import collect, discover, to_markdown, write_tables
from .rethinking import convergence_tables, curve_plots, probe_agreement_table, summary_table
from .spec import PipelineSpec
from .stages import Layout, Stage, read_marker

SECTIONS = (("cls", "Pre-training: classification on the pre-training data"),
            *((t.name, t.section) for t in TABLES.values()))


def write_report(spec: PipelineSpec, stages: list[Stage], work_dirs: list[Path], command: str,
                 wall_s: float) -> tuple[Path, str]:
    """Write tables/, plots/ and report.md under the report folder; return (report path, tables as Markdown)."""
    layout = Layout(spec.report_dir)
    pre, tra = discover(work_dirs)
    tables = collect(pre, tra)
    write_tables(tables, layout.root / "tables")
    plots = draw_all(pre, tra, layout.root / "plots")
    tables_md = "\n".join(to_markdown(tables[k]) for k, _ in SECTIONS if k in tables)
    summary, curves = summary_table(tra), convergence_tables(tra)
    agreement = probe_agreement_table(pre, tra)
    curve_pngs = curve_plots(tra, layout.root / "plots")
    if summary is not None and (curves or any(r.setting != (False, 1.0) for r in tra)):
        atomic_write_text(layout.root / "tables" / "rethinking.md", summary.to_markdown())
        tables_md = "**Rethinking summary**\n\n" + summary.to_markdown() + "\n" + tables_md
    else:
        summary = None

    lines = [f"# Pre-training -> transfer report: {spec.report_dir.name}", "",
             f"Generated {_dt.datetime.now().astimezone().isoformat(timespec='seconds')} by `{command}`; "
             f"this invocation took {fmt_s(wall_s)} (stage times below include earlier invocations).", "",
             "Methods: " + ", ".join(f"`{m.name}` ({m.config})" for m in spec.methods)
             + f"; pre-training seeds {list(spec.seeds)}, fine-tuned from seeds {list(spec.transfer_seeds)}"
             + (" (each with its own fine-tuning seed), and from a randomly initialised backbone (`scratch`) with "
                "the same seeds" if spec.scratch else "") + ".",
             "Rows are means over seeds (± sample std when there are several); each Δ row is that method minus the "
             "uniform baseline of the same backbone: the mean of the per-seed differences, with the paired 95% t "
             "interval [low, high] when two or more seeds pair up -- an interval that holds 0 is noise at this "
             "sample size. The scratch rows stand apart at the bottom of each table: Δ scratch is what "
             "pre-training buys. Cost is the pre-training cost relative to uniform training, in trained samples "
             "and in FLOPs (online selection's scoring passes count in FLOPs).", ""]
    if summary is not None:
        lines += ["## Rethinking summary: where does the cheaper pre-training lose?", "",
                  "Δ vs uniform of each recipe's headline metric early in fine-tuning and at its end, with the "
                  "smallest data fraction and all data, frozen and fine-tuned (the settings this study ran; "
                  "docs/pipeline.md, \"Reading the summary\").", "", summary.to_markdown()]
    for key, title in SECTIONS:
        if key in tables:
            lines += [f"## {title}", "", to_markdown(tables[key])]
        if key == "cls" and "kept_fraction" in plots:
            lines += [_img(plots["kept_fraction"], layout.root, "Kept fraction per epoch"), ""]
    if curves:
        lines += ["## Fine-tuning curves", "",
                  "Each recipe's headline metric at every validation of the fine-tuning (`curve_points`), mean ± "
                  "std over seeds; scratch dashed. The tables give the values and each method's Δ vs uniform at "
                  "each point.", ""]
        lines += [_img(png, layout.root, name) + "\n" for name, png in curve_pngs.items()]
        lines += [to_markdown(t) for t in curves]
    if agreement is not None:
        lines += ["## Does the probe predict fine-tuning?", "", agreement.to_markdown()]
    if "accuracy_vs_cost" in plots:
        lines += ["## Accuracy against pre-training cost", "",
                  "Each method at its relative pre-training FLOPs, error bars ± one seed std; the dashed line is the "
                  "scratch fine-tuning (no pre-training, band ± its std).", "",
                  _img(plots["accuracy_vs_cost"], layout.root, "Accuracy vs cost"), ""]
    if "probes" in plots:
        lines += ["## Transfer probes during pre-training", "",
                  "The `probe` lines of each pre-training log.jsonl (frozen backbone: kNN top-1 on the pre-training "
                  "val set, dense linear probe mIoU on the tiny segmentation set) against epoch and against the "
                  "pre-training cost spent so far; mean ± std over seeds.", "",
                  _img(plots["probes"], layout.root, "Probes"), ""]
    dar = [k for k in plots if k.startswith("dar_losses_")]
    if dar:
        lines += ["## What DaR dropped", "",
                  "Recorded training loss of the samples trained in each drop epoch, split into those kept for the "
                  "next epochs (the hardest) and those dropped.", ""]
        lines += [_img(plots[k], layout.root, k) + "\n" for k in dar]
    lines += _files(layout) + _timings(layout, stages)
    report = layout.root / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report, tables_md


def _img(path: Path, root: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(root).as_posix()})"


def _files(layout: Layout) -> list[str]:
    lines = ["## Files", "", "- tables: `tables/<table>.md` and `.csv`; plots: `plots/*.png`",
             "- work dirs: `pretrain/<method>_s<seed>/`, `transfer/<entry>/<method>_s<seed>/`; stage logs: `logs/`"]
    if layout.index.is_file():
        models = (yaml.safe_load(layout.index.read_text()) or {}).get("Models", [])
        lines.append(f"- published models (index `{layout.index.relative_to(layout.root)}`): "
                     + ", ".join(f"`{m['Weights']}`" for m in models))
    return lines + [""]


def _timings(layout: Layout, stages: list[Stage]) -> list[str]:
    rows, wall, cpu = [], 0.0, 0.0
    for s in stages:
        rec = read_marker(layout.marker(s))
        if rec and rec.get("wall_s") is not None:
            wall += rec["wall_s"]
            cpu += rec.get("cpu_s") or 0.0
            c = rec.get("cpu_s")
            rows.append(f"| {s.id} | {rec['wall_s']:.1f} | {'(with the test)' if c is None else f'{c:.1f}'} |")
    if not rows:
        return []
    return ["## Stage times (s)", "", "CPU is user + system time of the stage's processes (all cores); a "
            "fine-tuning run tested in its own process counts its CPU with the test.", "",
            "| stage | wall-clock | CPU |", "|---|---|---|", *rows, f"| **total** | {wall:.1f} | {cpu:.1f} |", ""]
