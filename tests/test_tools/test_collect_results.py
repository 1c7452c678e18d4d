"""``tools/collect_results.py`` on bad input: one ``error:`` line and a non-zero exit, nothing written.

(What it prints for real work dirs is checked against the demo pipeline's own tables in
``tests/test_pipeline/test_demo_e2e.py``.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "collect_results.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["{tmp}/absent"], 2, "error: work dir not found: {tmp}/absent"),
    (["{tmp}", "--plots"], 2, "error: --plots needs --out DIR"),
    (["{tmp}", "--out", "{tmp}/out"], 1, "error: no finished pre-training (log.jsonl summary) or transfer "
                                         "(metrics.json) work dir under {tmp}"),
])
def test_bad_input_is_one_error_line(tmp_path, args, code, message):
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "log.jsonl").write_text('{"type": "epoch", "epoch": 1}\n')  # no summary line
    proc = run(*(a.format(tmp=tmp_path) for a in args))
    assert proc.returncode == code
    assert proc.stderr.strip().splitlines() == [message.format(tmp=tmp_path)]
    assert proc.stdout == "" and not (tmp_path / "out").exists()
