"""Helpers of the transfer-side reliability tests: real subprocesses of the project's tools, small pipeline
configs written for a test, file snapshots, and the records ``docs/reliability.md`` is made from."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from helpers import harness

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
FSIZE = Path(__file__).resolve().parent / "fsize.py"
TIMEOUT_S = 1800
# The tiny sets at the size these tests were measured with (24 train / 8 val scenes of 256 px, no
# classification set): the generator's defaults are sized for the demo's numbers, not for these checks.
TINY = dict(seed=0, num_train=24, num_val=8, size=256, classification=(0, 0), log=lambda _msg: None)
# The five tiny fine-tuning recipes (configs/transfer/) and the tiny set each reads: PSPNet, the CI
# representative of the reliability runs, first.
TINY_RECIPES = {"pspnet_r18b-d8_tiny.py": "cityscapes", "faster-rcnn_r18_fpn_tiny.py": "coco",
                "mask-rcnn_r18_fpn_tiny.py": "coco", "retinanet_r18_fpn_tiny.py": "coco", "td-hm_res18_tiny.py": "coco"}


def recipe_id(name: str) -> str:
    """A recipe's short test id: ``pspnet``, ``faster-rcnn``, ``mask-rcnn``, ``retinanet``, ``td-hm``."""
    return name.split("_")[0]


def tool(name: str, *args: str | Path, preexec_fn=None, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """``python tools/<name> ARGS`` from the repository root, output captured (pipes: a file-size limit
    applies to files only, so the error line always comes back)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(TOOLS / name), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, preexec_fn=preexec_fn, timeout=timeout)


def tool_in_process(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    """``tools/<name>``'s ``main(ARGS)`` in this process, output captured, as :func:`tool` returns it: for a
    refusal checked before any training, which a subprocess reaches only after ~10 s of importing torch and
    the toolboxes. Each tool's process-level path (exit status, one line, no traceback) keeps its own
    subprocess test (``test_cli_values.py::test_the_real_tool_prints_one_line`` for ``tools/train.py``)."""
    import contextlib
    import importlib.util
    import inspect
    import io

    spec = importlib.util.spec_from_file_location(f"tools_{Path(name).stem}", TOOLS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = [str(a) for a in args]
    # what each tool's ``__main__`` block does: main(argv) (train.py, test.py) or main(its parser's parse)
    takes_argv = next(iter(inspect.signature(module.main).parameters)) == "argv"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = module.main(argv) if takes_argv else module.main(module.get_args_parser().parse_args(argv))
        except SystemExit as stop:  # as the interpreter would end: a message goes to stderr with status 1
            code = stop.code if isinstance(stop.code, int) else 1
            if stop.code is not None and not isinstance(stop.code, int):
                print(stop.code, file=sys.stderr)
    return subprocess.CompletedProcess([name, *map(str, args)], code, out.getvalue(), err.getvalue())


def tool_failing_at(limit: int, pattern: str, name: str, *args: str | Path) -> subprocess.CompletedProcess:
    """``tools/<name> ARGS`` under ``fsize.py``: a ``limit``-byte file-size limit from the moment it opens a
    file matching ``pattern`` for writing."""
    return tool("../tests/helpers/fsize.py", limit, pattern, TOOLS / name, *args)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exactly one ``error:`` line, the last line of stderr, holding every needle; a non-zero exit."""
    assert proc.returncode != 0, proc.stderr[-3000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[str]:
    """Hidden temporary files of atomic writes (``.<name>.tmp<pid>``) left under ``folder``."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*.tmp*"))


def pipeline_config(path: Path, report_dir: Path, tiny: Path, seg: bool) -> Path:
    """The smallest pipeline of the demo's shape: uniform ResNet-18 pre-training on digits (16 px, 2 epochs,
    a checkpoint each), publishing, and (``seg``) PSPNet fine-tuning (6 iterations, a checkpoint every 2)
    and testing on the tiny Cityscapes. Dropout is off so that a fine-tuning resumed by mmengine (which
    restores weights, optimizer and iteration but not the RNG) computes bit for bit what an uninterrupted
    one does; everything else is the shipped configs."""
    tasks = ([dict(task="seg", config=str(ROOT / "configs/transfer/pspnet_r18b-d8_tiny.py"),
                   cfg_options={"model.decode_head.dropout_ratio": 0.0, "model.auxiliary_head.dropout_ratio": 0.0})]
             if seg else [])
    cfg = {
        "report_dir": str(report_dir), "arch": "resnet18", "seeds": [0], "transfer_seeds": [0],
        "tiny_data": dict(root=str(tiny), args=[]), "data_roots": dict(cityscapes=str(tiny / "cityscapes")),
        "pretrain_cfg_options": {"data.img_size": 16, "schedule.epochs": 2, "schedule.milestones": [1],
                                 "runtime.checkpoint_interval": 1},
        "transfer_cfg_options": {"val_cfg": None, "val_dataloader": None, "val_evaluator": None,
                                 "randomness.seed": 0, "train_cfg.max_iters": 6,
                                 "default_hooks.checkpoint.interval": 2},
        "methods": [dict(name="uniform", config=str(ROOT / "configs/pretrain/tiny_digits_uniform.py"))],
        "tasks": tasks,
    }
    path.write_text("".join(f"{k} = {v!r}\n" for k, v in cfg.items()))
    return path


def write_record(kind: str, **fields) -> None:
    """Append one JSON line for ``docs/reliability.md`` (the pre-training harness's record file and writer)."""
    harness.write_record(kind, fields)


def free_port() -> str:
    """A free local TCP port for a torchrun rendezvous (``PORT`` of ``tools/dist_train.sh``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process below it (from ``/proc``), parents first."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop(0))
        todo += parents.get(tree[-1], [])
    return tree


def kill_tree(pid: int) -> None:
    """SIGSTOP ``pid``'s whole tree (twice: a process forked meanwhile is caught), then SIGKILL it."""
    for _ in range(2):
        for p in process_tree(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
    for p in process_tree(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
