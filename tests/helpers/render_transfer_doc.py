"""Print the "Transfer and pipeline" tables of docs/reliability.md from the records the transfer-side tests
append (``bad_input``, ``write_failure``, ``pipeline_kill`` lines of ``work_dirs/reliability/records.jsonl``;
override with ``DAR_RELIABILITY_RECORDS``). The newest record of each check wins.

    PYTHONPATH=tests python -m helpers.render_transfer_doc [RECORDS]
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from helpers.transfer_runs import ROOT, records_path


def newest(records: list[dict], kind: str, key) -> list[dict]:
    out: dict[str, dict] = {}
    for r in records:
        if r.get("kind") == kind:
            out[key(r)] = r
    return list(out.values())


def cell(text: str) -> str:
    """A table cell: pytest's temporary folders as ``<tmp>/``, repository paths relative, ``|`` escaped."""
    text = re.sub(r"/\S*?/pytest-\d+/", "<tmp>/", text).replace(str(ROOT) + "/", "")
    return text.replace("|", "\\|")


INTRO = """\
What the transfer side (mmengine fine-tuning, `tools/test.py`, `tools/publish_model.py`, `tools/pipeline.py`)
was put through, each case a real subprocess of the tool a user runs, checked by its exit code, its one
`error:` line and the files it leaves. Tests: `tests/test_reliability/test_transfer_faults.py` (CI) and
`tests/test_reliability/test_pipeline_kill.py` (`slow`). The tables below are printed by
`PYTHONPATH=tests python -m helpers.render_transfer_doc` from the records those tests append to
`work_dirs/reliability/records.jsonl` (newest record of each case; temporary folders shown as `<tmp>/`).

How the faults are made:

- **Write failures** are real `EFBIG` errors from the kernel: the writing process runs with `RLIMIT_FSIZE`
  (SIGXFSZ ignored), either from its start (`preexec_fn`, for `tools/publish_model.py`) or armed by an
  audit hook at the moment it opens the named file for writing (`tests/helpers/fsize.py`, for a
  file written after large ones: `metrics.json`, `report.md`, a table, a plot, a stage marker). The hook
  sees every `open`, so a writer that bypassed `dar_common/workdir.py`'s atomic writes would fail the check
  too. "Unchanged" compares the bytes of every previous file of that kind before and after.
- **Kills** are `SIGKILL` to the whole process group (the pipeline and its training child), sent as soon
  as `last_checkpoint` names the chosen checkpoint; the rerun is the same command (the pipeline adds
  `--resume` to a stage whose work dir has a checkpoint; a fine-tuning resumes through mmengine's
  `resume=True`, i.e. `find_latest_checkpoint`).

Limits: mmengine's checkpoints restore weights, optimizer, schedulers and the iteration, not the RNG, and
its iteration-based loop replays the skipped batches' data pipeline; a fine-tuning is therefore bit-exact
after a resume only where training draws no random numbers outside the data pipeline. The kill tests turn
dropout off (the PSPNet heads' `dropout_ratio=0`); with dropout on, the masks after a resume come from
another RNG state, so the bits would differ (not tested here). A published file whose metafile entry could not be
written stays (complete; its name is its hash); rerunning the publish writes the entry.

Open: in one of five runs of the fine-tuning kill test (a checkpoint every iteration, machine at load ~20)
the resumed weights differed from the uninterrupted run's; four reruns (a checkpoint every 1 and every 2
iterations) were identical, and the cause is not known. The test now first compares the checkpoint both
runs wrote before the kill, so a recurrence shows whether the runs diverged before the kill (the run
itself is not deterministic) or after it (the resume).
"""

# Measured once by hand (pytest --durations), not by the tests: update when the tests change.
RUNTIMES = """\
Runtimes, wall-clock on the shared 2-core machine at a load average of ~20 (so far above what a quiet CI
runner takes): `test_transfer_faults.py` ran in three parts of 914 s, 534 s and 376 s (its fixtures: tiny
data, a ResNet-18 publish, a 2-iteration PSPNet fine-tune, a 2-epoch pre-training pipeline; then ~25 tool
subprocesses); `test_pipeline_kill.py` 1317 s. The one CPU figure measured: the tiny reference pipeline
(pre-train, publish, fine-tune, test, report) takes 73 s of CPU (user + system).
"""


def render(records: list[dict]) -> str:
    lines = [*INTRO.rstrip("\n").splitlines(), "", "### Bad inputs (real subprocess of the tool)", "",
             "| tool | input | exit code | the one line it prints |", "|---|---|---|---|"]
    for r in newest(records, "bad_input", lambda r: r["tool"] + r["input"]):
        lines.append(f"| `{r['tool']}` | {r['input']} | {r['exit_code']} | `{cell(r['line'])}` |")
    lines += ["", "### Write failures (EFBIG from RLIMIT_FSIZE in the writing process)", "",
              "| writer | exit code | previous file(s) unchanged | temporary files left | the one line it prints |",
              "|---|---|---|---|---|"]
    for r in newest(records, "write_failure", lambda r: r["writer"]):
        lines.append(f"| {r['writer']} | {r['exit_code']} | {'yes' if r['unchanged'] else 'NO'} "
                     f"({r['files_checked']} file(s)) | {len(r['temporaries'])} | `{cell(r['line'])}` |")
    kills = newest(records, "pipeline_kill", lambda r: "pipeline") + newest(records, "transfer_resume", lambda r: "ft")
    if kills:
        lines += ["", "### Killed mid-run (SIGKILL to the whole process group), then rerun", "",
                  "| what was killed | kills | runs | compared with an uninterrupted run | identical |",
                  "|---|---|---|---|---|"]
        for r in kills:
            what = ("`tools/pipeline.py` (pre-training + fine-tuning stages)" if r["kind"] == "pipeline_kill"
                    else f"`tools/train.py {r['config']}` (`--resume`)")
            lines.append(f"| {what} | {'; '.join(r['kills'])} | {r['runs']} | {', '.join(r['compared'])} | "
                         f"{'yes' if r['identical'] else 'NO'} |")
    return "\n".join([*lines, "", *RUNTIMES.rstrip("\n").splitlines()]) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else records_path()
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    print(render(records), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
