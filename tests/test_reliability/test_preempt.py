"""pretrain/preempt.py on its own: settings checked up front, time-based checkpoints, and the doc renderer."""
from __future__ import annotations

import signal

import pytest
from helpers.harness import ROOT, TINY_OPTIONS, compare_work_dirs, run_to_end
from helpers.render_doc import render

from pretrain.cli import train_main
from pretrain.preempt import parse_signals

UNIFORM = ROOT / "configs" / "pretrain" / "tiny_digits_uniform.py"


def test_signal_names_are_checked():
    assert parse_signals(["SIGTERM", "USR1"]) == (signal.SIGTERM, signal.SIGUSR1)
    assert parse_signals([]) == ()
    for bad in ("SIGKILL", "STOP", "SIGNOPE"):
        with pytest.raises(ValueError, match="not a signal a process can catch"):
            parse_signals([bad])


@pytest.mark.parametrize("option, message", [
    ("runtime.preempt_signals=[SIGKILL]", "runtime.preempt_signals: 'SIGKILL' is not a signal"),
    ("runtime.checkpoint_minutes=0", "runtime.checkpoint_minutes must be a positive number"),
])
def test_bad_settings_are_one_line_before_any_work(option, message, tmp_path, capsys):
    assert train_main([str(UNIFORM), "--work-dir", str(tmp_path / "w"), "--dry-run", "--cfg-options", option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


@pytest.mark.slow
def test_time_based_checkpoints_keep_the_newest_and_resume_exactly(references, tmp_path):
    """checkpoint_minutes=1e-4 (6 ms): a step_<n>.pth after every step, each replacing the one before; the
    run trains exactly what the uninterrupted run trains, and a resume from the newest step checkpoint too."""
    opts = TINY_OPTIONS  # the uniform interruption chain's options: its reference run is reused
    reference = references.get(UNIFORM, opts)
    work = tmp_path / "timed"
    run_to_end(UNIFORM, work, [*opts, "runtime.checkpoint_minutes=0.0001"], 1, False, tmp_path / "l1")
    steps = sorted(work.glob("step_*.pth"))
    assert len(steps) == 1 and int(steps[0].stem.split("_")[1]) > 60  # 66 updates; the newest kept
    _, diffs = compare_work_dirs(reference.work_dir, work)
    assert not diffs, diffs[:10]
    (work / "last_checkpoint").write_text(str(steps[0]))  # as if killed right after it
    (work / "backbone.pth").unlink()
    run_to_end(UNIFORM, work, opts, 1, True, tmp_path / "l2")
    _, diffs = compare_work_dirs(reference.work_dir, work)
    assert not diffs, diffs[:10]


def test_the_doc_tables_are_counted_from_the_records():
    run = lambda kind, point, code: {"kind": kind, "returncode": code, "moment": {"point": point, "key": "3"}}  # noqa: E731
    records = [
        {"kind": "interruptions", "config": "configs/pretrain/tiny_digits_dar.py", "ranks": 1,
         "runs": [run("killed", "step", -9), run("SIGTERM", "selection", 75), {"kind": "resumed", "returncode": 0,
                                                                               "moment": None}],
         "compared": ["log.jsonl (7 lines)"], "differences": [], "stale_temporaries": [".epoch_3.pth.tmp1"]},
        {"kind": "pretrain_write_failure", "writer": "log.jsonl", "exit_code": 1, "unchanged": True,
         "files_checked": 1, "temporaries": [], "line": "error: [Errno 27] File too large: 'log.jsonl'"},
    ]
    text = render(records)
    assert "| `tiny_digits_dar` | 1 | 3 | step 3 | SIGTERM: selection 3 (75) | log.jsonl (7 lines) | yes | 1 |" in text
    assert "1 checks, 4 runs (with the uninterrupted ones): 1 SIGKILLs and 1 caught" in text
    assert "| log.jsonl | 1 | yes (1 file(s)) | 0 | `error: [Errno 27] File too large: 'log.jsonl'` |" in text
