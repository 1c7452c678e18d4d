"""Pre-train every method of a pipeline config, publish, fine-tune and test each task, and write a report.

    python tools/pipeline.py configs/pipeline/demo.py                 # the embedded demo (CPU, minutes)
    python tools/pipeline.py configs/pipeline/demo.py --quick         # every stage, fewest iterations
    python tools/pipeline.py configs/pipeline/demo.py --methods uniform,dar --tasks seg
    python tools/pipeline.py configs/pipeline/imagenet_study.py --cfg-options imagenet_root=/data/imagenet

Rerunning the same command resumes: finished stages are skipped, an interrupted training resumes from its
last checkpoint. The report (``report.md``, ``tables/``, ``plots/``) is written to the config's
``report_dir`` (or ``--report-dir``). See docs/pipeline.md.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first, not an installed copy's

# mmengine/mmpose import pkg_resources (setuptools<81 is pinned for it): the demo's output need not say so
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from mmengine.config import DictAction  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="pipeline config (configs/pipeline/*.py)")
    p.add_argument("--report-dir", help="report folder (default: the config's report_dir)")
    p.add_argument("--quick", action="store_true",
                   help="apply the config's `quick` overrides: all stages, fewest iterations (CI, smoke tests)")
    p.add_argument("--methods", help="comma list of method names to run (default: all in the config)")
    p.add_argument("--tasks", help="comma list of transfer entries to run, by name (default: the task, e.g. "
                   "det,ins,pose,seg) or by task (every entry of it); default: all in the config")
    p.add_argument("--seeds", help="comma list of pre-training seeds (default: the config's)")
    p.add_argument("--jobs", type=int, metavar="N", help="run up to N independent stages at once (single-process "
                   "launches: e.g. 2 on a 2-core CPU, one per GPU); default: the config's launch.jobs, else 1")
    p.add_argument("--dry-run", action="store_true", help="validate and print the stages, run nothing")
    p.add_argument("--verbose", action="store_true", help="stream every stage's output instead of a progress bar")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="override pipeline config keys, e.g. report_dir=out seeds=[0,1]")
    return p


def main(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    from transfer.study.checks import validate
    from transfer.study.errors import PipelineError
    from transfer.study.report import write_report
    from transfer.study.runner import Runner, StageFailed, label
    from transfer.study.spec import load_spec
    from transfer.study.stages import pretrain_command, quote, tail

    try:
        spec = load_spec(args.config, quick=args.quick, methods=args.methods, tasks=args.tasks, seeds=args.seeds,
                         report_dir=args.report_dir,
                         cfg_options={**args.cfg_options, **({} if args.jobs is None else {"launch.jobs": args.jobs})})
        archs = validate(spec)
        runner = Runner(spec, archs, echo=args.verbose)
        runner.check_markers()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    todo = [s for s in runner.stages if not runner.done(s)]
    print(f"pipeline {args.config}: {len(spec.methods)} methods x {len(spec.seeds)} seeds, tasks "
          f"{','.join(t.name for t in spec.tasks) or 'none'}; {len(runner.stages)} stages, {len(todo)} to run; "
          f"report in {spec.report_dir}", file=sys.stderr)
    if args.dry_run:
        for s in runner.stages:
            print(f"  {'done' if runner.done(s) else 'todo'}  {label(s)}")
            if s.kind == "pretrain" and not runner.done(s):
                print(f"        $ {quote(pretrain_command(spec, runner.layout, s).full)}")
        return 0
    try:
        wall = runner.run()
    except StageFailed as e:
        if e.preempted:  # checkpoint written; a rerun resumes the stage (--resume where it has a checkpoint)
            print(f"preempted: {e}; rerun the same command to resume", file=sys.stderr)
            return 75
        print(f"error: {e}", file=sys.stderr)
        if e.log is not None:
            print(tail(e.log, 25), file=sys.stderr)
            print(f"error: {e} -- full log: {e.log}; rerun the same command to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as e:  # a state file that could not be written (full disk, file-size limit): the old one stays
        print(f"error: {e}; rerun the same command to resume", file=sys.stderr)
        return 1
    if not spec.launch.is_main_node:
        print(f"node {spec.launch.node_rank}: all stages done; node 0 writes the report", file=sys.stderr)
        return 0
    command = "python tools/pipeline.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        report, tables = write_report(spec, runner.stages, runner.work_dirs(), command, wall)
    except OSError as e:  # every report file is written atomically: the previous report stays whole
        print(f"error: writing the report: {e}", file=sys.stderr)
        return 1
    print(tables)
    print(f"report: {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
