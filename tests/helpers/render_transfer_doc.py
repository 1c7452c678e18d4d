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
`error:` line and the files it leaves. Tests: `tests/test_reliability/test_transfer_faults.py`,
`test_transfer_preempt.py`, `test_work_dir_lock.py`, `test_transfer_upstream_tools.py` (CI) and
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

Exact resume with randomness on (`transfer/mm/resume.py`, registered by `tools/train.py`): `RNGStateHook`
stores every rank's Python, NumPy, torch CPU and CUDA generator states in each mmengine checkpoint and puts
this rank's back right before the first batch after the checkpoint, i.e. after mmengine's iteration loop
has replayed the skipped batches' data pipeline (which draws from the same generators); validation runs
with training's generators set aside. The sampler and loader need nothing more (their position comes from
the replay, worker seeds from `randomness.seed`). The kill and preemption tests run the tiny PSPNet as
shipped: dropout 0.1 in both heads, random resize, crop and flip. `PreemptionHook`: SIGTERM/SIGUSR1 set a
flag; after each iteration one all_reduce tells every rank; all write the iteration's checkpoint (the run's
own `CheckpointHook`), wait for rank 0, and exit 75 (`pretrain.torchrun` behind `tools/dist_train.sh` and
the pipeline's `pytorch` launch passes 75 on; `tools/slurm_train.sh` requeues on it; `tools/pipeline.py`
exits 75 when a stage did). One run per work dir: `dar_common.workdir.hold_work_dir`, a POSIX record lock
(`fcntl.lockf`) on `<work dir>/.run.lock` holding the holder's pid, host, start and command; the kernel (or
the NFS server: NLM / NFSv4 leases) drops it with its process, so a SIGKILLed or crashed run's lock is
simply taken over; where the file system has no locks the record alone decides (same host: the pid must be
running; another host: the line says to remove the file once that run is gone).

Limits: mmengine's epoch-based loop (mmdet's and mmpose's full recipes) cannot resume inside an epoch, so
there a preemption stops after the iteration without a new checkpoint and the resume starts at the last
epoch checkpoint. RNG states are restored only on the world size that saved them (a warning otherwise).
A published file whose metafile entry could not be written stays (complete; its name is its hash);
rerunning the publish writes the entry.

The one-in-five difference an earlier session saw (dropout off, a checkpoint every iteration, load ~20,
cause not found) did not recur. Runs this session on the shared 2-core machine (load from six other
sessions): four identical PSPNet fine-tunings started at once, their `iter_2.pth` and `iter_4.pth`
bit-identical (the run itself is deterministic at a fixed thread count under load); the kill test with
randomness on three times (SIGKILL after `iter_3.pth`, `iter_1.pth`, `iter_2.pth` of 4; two of them side by side with
the Faster R-CNN one); both preemption tests once. Every resume was identical. What can make a
resumed fine-tuning differ, and why: (1) until this change, every random draw outside the data pipeline
after a resume -- dropout, RPN/RoI sampling, and the validation loader's base seed (torch draws it when the
loader's iterator is made) where a validation and a checkpoint share an iteration -- came from the state
mmengine's seeding left, not the checkpoint's: removed by `RNGStateHook`; (2) another intra-op thread count
sums floats in another order (the pipeline's digests include it with `jobs` > 1); (3) on a GPU, kernels that
accumulate with atomics (RoIAlign and interpolation backward) differ run to run unless
`torch.use_deterministic_algorithms` is on. The failing run's logs no longer exist, so which applied then
cannot be said; the test still compares the checkpoint both runs wrote before the kill first, so a
recurrence tells a nondeterministic run from a wrong resume.
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
    kills = newest(records, "pipeline_kill", lambda r: "pipeline") + newest(records, "transfer_resume", lambda r: r["config"])
    if kills:
        lines += ["", "### Killed mid-run (SIGKILL to the whole process group), then rerun", "",
                  "| what was killed | kills | runs | compared with an uninterrupted run | identical |",
                  "|---|---|---|---|---|"]
        for r in kills:
            what = ("`tools/pipeline.py` (pre-training + fine-tuning stages)" if r["kind"] == "pipeline_kill"
                    else f"`tools/train.py {r['config']}` (`--resume`; {r.get('randomness', 'dropout off')})")
            lines.append(f"| {what} | {'; '.join(r['kills'])} | {r['runs']} | {', '.join(r['compared'])} | "
                         f"{'yes' if r['identical'] else 'NO'} |")
    preempts = newest(records, "transfer_preempt", lambda r: str(r["ranks"]))
    if preempts:
        lines += ["", "### Fine-tuning preempted by a real signal, then `--resume`", "",
                  "| config | ranks | signal | stopped at | exit code | compared with an uninterrupted run | identical |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(preempts, key=lambda r: r["ranks"]):
            lines.append(f"| `{r['config']}` | {r['ranks']} | {r['signal']} | {r['stopped_at']} | {r['exit_code']} | "
                         f"{', '.join(r['compared'])} | {'yes' if r['identical'] else 'NO'} |")
    locks = newest(records, "work_dir_lock", lambda r: r["case"])
    if locks:
        lines += ["", "### One run per work dir (real concurrent processes; the holder held with SIGSTOP)", "",
                  "| case | exit code | the one line the second run prints |", "|---|---|---|"]
        for r in locks:
            lines.append(f"| {r['case']} | {r['exit_code']} | `{cell(r['line'])}` |")
    return "\n".join([*lines, "", *RUNTIMES.rstrip("\n").splitlines()]) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else records_path()
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    print(render(records), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
