"""Print the "Transfer and pipeline" tables of docs/reliability.md from the records the transfer-side tests
append (``bad_input``, ``write_failure``, ``pipeline_kill`` lines of ``work_dirs/reliability/records.jsonl``;
override with ``DAR_RELIABILITY_RECORDS``). The newest record of each check wins.

    python tests/test_reliability/render_transfer_doc.py [RECORDS]
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_runs import ROOT, records_path  # noqa: E402


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


def render(records: list[dict]) -> str:
    lines = ["### Bad inputs (real subprocess of the tool)", "",
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
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else records_path()
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    print(render(records), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
