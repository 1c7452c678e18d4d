"""Pipeline config resolution, validation and stage bookkeeping, without running any stage."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mmengine.config import DictAction

from transfer.study.checks import validate
from transfer.study.errors import PipelineError
from transfer.study.launch import Launch
from transfer.study.progress import Progress
from transfer.study.runner import Runner
from transfer.study.spec import load_spec
from transfer.study.stages import Layout, Stage, finetune_command, options_argv, plan, write_marker

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "pipeline" / "demo.py"


@pytest.fixture(autouse=True)
def repo_cwd(monkeypatch):
    monkeypatch.chdir(ROOT)  # config paths in pipeline configs are relative to the repository root


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pipe.py"
    # transfer_methods = None: the demo's names methods that a body replacing `methods` may not have
    path.write_text(f"_base_ = ['{DEMO}']\nreport_dir = '{tmp_path / 'report'}'\ntransfer_methods = None\n{body}\n")
    return path


def test_demo_spec_quick_and_subsets():
    full = load_spec(DEMO)
    assert [m.name for m in full.methods] == ["uniform", "dar", "dar_random"]
    assert [t.name for t in full.tasks] == ["det", "retinanet", "ins", "pose", "seg"]
    assert [t.task for t in full.tasks] == ["det", "det", "ins", "pose", "seg"]
    quick = load_spec(DEMO, quick=True)
    assert quick.report_dir == Path(str(full.report_dir) + "_quick")
    assert quick.seeds == (0,) and quick.transfer_methods == ("uniform", "dar")
    assert quick.pretrain_cfg_options["data.img_size"] == 16
    sub = load_spec(DEMO, methods="dar,dar_random", tasks="seg", seeds="3")
    assert [m.name for m in sub.methods] == ["dar", "dar_random"] and [t.task for t in sub.tasks] == ["seg"]
    assert sub.seeds == (3,) and sub.transfer_seeds == (3,)
    with pytest.raises(PipelineError, match="unknown method 'bogus'"):
        load_spec(DEMO, methods="uniform,bogus")


def test_plan_orders_pretrain_and_publish_before_transfer():
    spec = load_spec(DEMO, quick=True)
    stages = plan(spec)
    kinds = [s.kind for s in stages]
    assert kinds.count("pretrain") == kinds.count("publish") == len(spec.methods) * len(spec.seeds)
    n_transfer = len(spec.tasks) * len(spec.transfer_methods) * len(spec.transfer_seeds)
    assert kinds.count("finetune") == kinds.count("test") == n_transfer
    last_publish = max(i for i, k in enumerate(kinds) if k == "publish")
    assert all(k in ("finetune", "test") for k in kinds[last_publish + 1:])
    assert Stage("test", "dar", 0, "seg").id == "test/seg/dar_s0"


def test_two_recipes_of_one_task_run_side_by_side(tmp_path):
    spec = load_spec(DEMO, quick=True, report_dir=str(tmp_path / "r"))
    ids = [s.id for s in plan(spec) if s.kind == "finetune"]
    assert "finetune/det/uniform_s0" in ids and "finetune/retinanet/uniform_s0" in ids
    layout = Layout(spec.report_dir)
    assert layout.transfer("retinanet", "dar", 0) == spec.report_dir / "transfer" / "retinanet" / "dar_s0"
    retina = Stage("finetune", "dar", 0, "retinanet")
    cmd = finetune_command(spec, layout, retina, tmp_path / "b.pth")
    assert cmd.tool_args[1] == "configs/transfer/retinanet_r18_fpn_tiny.py" and "randomness.seed=0" in cmd.tool_args
    assert cmd.digest != finetune_command(spec, layout, Stage("finetune", "dar", 0, "det"), tmp_path / "b.pth").digest
    assert spec.data_root("retinanet") == spec.data_root("det") == "data/tiny_quick/coco"  # det reads coco (--quick's)
    # a subset names entries; a task that names no entry selects all of that task's entries
    assert [t.name for t in load_spec(DEMO, tasks="det").tasks] == ["det"]
    assert [t.name for t in load_spec(DEMO, tasks="retinanet,seg").tasks] == ["retinanet", "seg"]
    named = write_config(tmp_path, "tasks = [dict(name='frcnn', task='det', config='configs/transfer/faster-rcnn_r18_fpn_tiny.py'), "
                                   "dict(name='retina', task='det', config='configs/transfer/retinanet_r18_fpn_tiny.py')]")
    assert [t.name for t in load_spec(named, tasks="det").tasks] == ["frcnn", "retina"]
    # GPUs per entry name, then per task, then the default
    gpus = Launch.from_config(dict(launcher="pytorch", gpus=dict(default=8, det=2, retinanet=4)), {})
    assert gpus.gpus_for("det", "det") == 2 and gpus.gpus_for("retinanet", "det") == 4
    assert gpus.gpus_for("frcnn", "det") == 2 and gpus.gpus_for("seg", "seg") == 8


def test_options_argv_parses_back_to_the_same_values():
    opts = {"a.b": 1, "c": None, "d": [1, 2], "e": "data/x.json", "f": 0.5, "g": (3, 4), "h": True, "i": ["a", "b"]}
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    assert parser.parse_args(options_argv(opts)).cfg_options == opts
    with pytest.raises(PipelineError, match="cannot hold spaces"):
        options_argv({"work_dir": "my runs/a"})


def test_demo_validates_and_reports_archs(tmp_path):
    spec = load_spec(DEMO, report_dir=str(tmp_path / "r"))
    assert validate(spec) == {m.name: "resnet18" for m in spec.methods}


@pytest.mark.parametrize("body, message", [
    ("methods = [dict(name='x', config='configs/pretrain/nope.py')]", "config file not found"),
    ("arch = 'resnet19'", "unknown timm model name 'resnet19'"),
    ("tasks = [dict(task='classify', config='configs/transfer/pspnet_r18b-d8_tiny.py')]", "unknown task 'classify'"),
    ("tasks = [dict(task='seg', config='configs/transfer/pspnet_r50b-d8_tiny.py')]",
     "takes a resnet50 backbone but method 'uniform' pre-trains resnet18"),
    ("tasks = [dict(task='pose', config='configs/transfer/pspnet_r18b-d8_tiny.py')]", "scope 'mmseg', expected 'mmpose'"),
    ("methods = [dict(name='a b', config='configs/pretrain/tiny_digits_dar.py')]", "not a plain folder name"),
    ("transfer_seeds = [7]", "transfer seed 7 is not among"),
    ("transfer_methods = ['dar', 'nope']", "transfer_methods names 'nope'"),
    ("tasks = [dict(task='det', config='configs/transfer/faster-rcnn_r18_fpn_tiny.py'), "
     "dict(task='det', config='configs/transfer/retinanet_r18_fpn_tiny.py')]", "task 'det' appears twice; give one"),
    ("tasks = [dict(name='my det', task='det', config='configs/transfer/faster-rcnn_r18_fpn_tiny.py')]",
     "task name 'my det' is not a plain folder name"),
    ("tasks = [dict(task='det', config='configs/transfer/mask-rcnn_r18_fpn_tiny.py')]", "is a 'ins' config, not 'det'"),
    ("tasks = [dict(name='x', config='configs/transfer/mask-rcnn_r18_fpn_tiny.py')]", "tasks.0. needs a 'task' key"),
])
def test_bad_pipeline_configs_fail_with_one_line(tmp_path, body, message):
    with pytest.raises(PipelineError, match=message):
        validate(load_spec(write_config(tmp_path, body)))


def test_unknown_pretraining_method_is_named(tmp_path):
    pre = tmp_path / "bad_method.py"
    pre.write_text(f"_base_ = ['{ROOT / 'configs/pretrain/tiny_digits_uniform.py'}']\nmethod = dict(type='dropout')\n")
    with pytest.raises(PipelineError, match="unknown pre-training method 'dropout'"):
        validate(load_spec(write_config(tmp_path, f"methods = [dict(name='m', config='{pre}')]")))


def test_unwritable_report_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PipelineError, match="is not writable"):
        validate(load_spec(DEMO, report_dir=str(blocker / "report")))


def test_markers_from_other_settings_or_with_missing_outputs_are_refused(tmp_path):
    spec = load_spec(DEMO, quick=True, methods="dar", tasks="seg", report_dir=str(tmp_path / "r"))
    runner = Runner(spec, {"dar": "resnet18"}, show=False)
    layout = Layout(spec.report_dir)
    pre = Stage("pretrain", "dar", 0)
    out = tmp_path / "backbone.pth"
    out.write_text("x")
    write_marker(layout.marker(pre), {"digest": runner.expected_digest(pre), "outputs": {"backbone": str(out)}})
    runner.check_markers()  # consistent: fine
    assert runner.done(pre) and not runner.done(Stage("publish", "dar", 0))
    other = Runner(load_spec(DEMO, methods="dar", tasks="seg", report_dir=str(tmp_path / "r")), {"dar": "resnet18"})
    with pytest.raises(PipelineError, match="made with other settings"):
        other.check_markers()  # same folder, non-quick settings
    out.unlink()
    with pytest.raises(PipelineError, match="output .*backbone.pth is gone; delete"):
        runner.check_markers()


def test_progress_off_a_terminal_prints_plain_lines(tmp_path):
    log = tmp_path / "progress.txt"
    with open(log, "w") as f:
        p = Progress(2, stream=f, heartbeat_s=0.0, tick=False)
        p.begin("pretrain dar seed 0")
        p.line("epoch 1/6: 50%")
        p.end("pretrain dar seed 0 done in 0:01")
        p.end("publish dar seed 0: done earlier, skipped")
        p.close()
    lines = log.read_text().splitlines()
    assert lines[0].startswith("[1/2] pretrain dar seed 0 ...")
    assert lines[1].startswith("[1/2] pretrain dar seed 0: 0:00 | epoch 1/6: 50%")
    assert lines[2].startswith("[1/2] pretrain dar seed 0 done") and lines[3].startswith("[2/2] publish dar")
    assert "\r" not in log.read_text()



def test_progress_side_by_side_ends_with_the_number_it_began_with(tmp_path):
    """Stages run side by side end out of order; each end line repeats its begin line's [k/total]."""
    log = tmp_path / "progress.txt"
    with open(log, "w") as f:
        p = Progress(3, stream=f, heartbeat_s=1e9, tick=False)
        p.begin("pretrain uniform seed 0")
        p.begin("finetune seg <- scratch seed 0")
        p.end("finetune seg <- scratch seed 0 done", "finetune seg <- scratch seed 0")
        p.begin("publish uniform seed 0")
        p.end("pretrain uniform seed 0 done", "pretrain uniform seed 0")
        p.end("publish uniform seed 0 done", "publish uniform seed 0")
        p.close()
    prefixes = [(ln.split("] ")[0] + "]", ln.split("] ")[1].split(" (total")[0]) for ln in log.read_text().splitlines()]
    assert prefixes == [("[1/3]", "pretrain uniform seed 0 ..."), ("[2/3]", "finetune seg <- scratch seed 0 ..."),
                        ("[2/3]", "finetune seg <- scratch seed 0 done"), ("[3/3]", "publish uniform seed 0 ..."),
                        ("[1/3]", "pretrain uniform seed 0 done"), ("[3/3]", "publish uniform seed 0 done")]

def test_progress_heartbeat_while_the_child_is_silent(tmp_path):
    log = tmp_path / "progress.txt"
    with open(log, "w") as f:
        p = Progress(1, stream=f, heartbeat_s=0.3)
        p.begin("finetune seg <- dar seed 0")
        p.line("Iter(train) [2/4]")
        time.sleep(1.0)  # no output from the child: the ticker still reports the clock
        p.end("finetune seg <- dar seed 0 done")
        p.close()
    beats = [ln for ln in log.read_text().splitlines() if "| Iter(train) [2/4]" in ln]
    assert len(beats) >= 2


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "pipeline.py"), str(DEMO), "--tasks", "det,depth",
                        "--report-dir", str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == ("error: unknown task 'depth' in the subset option; the config has: "
                                                 "det, retinanet, ins, pose, seg")
    assert not (tmp_path / "r").exists()


def test_launch_commands_for_torchrun_and_slurm():
    env = {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "PORT": "29600"}
    tr = Launch.from_config(dict(launcher="pytorch", gpus=dict(default=8, seg=4)), env)
    cmd = tr.wrap(["tools/train.py", "cfg.py"], "seg", job="j")
    assert cmd[1:3] == ["-m", "pretrain.torchrun"] and "--nproc_per_node=4" in cmd  # exit 75 passed on
    assert {"--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29600"} <= set(cmd)
    assert cmd[-4:] == ["tools/train.py", "cfg.py", "--launcher", "pytorch"] and not tr.is_main_node
    sl = Launch.from_config(dict(launcher="slurm", partition="gpu", gpus=16, srun_args=["--time=1:00:00"]), env)
    cmd = sl.wrap(["tools/train.py", "cfg.py"], "det", job="dar-det")
    assert cmd[:3] == ["srun", "-p", "gpu"] and "--ntasks=16" in cmd and "--ntasks-per-node=8" in cmd
    assert "--time=1:00:00" in cmd and cmd[-2:] == ["--launcher", "slurm"] and sl.is_main_node  # srun ranks itself
    # what changes the result enters the digest; where the nodes are does not
    assert tr.identity("seg") == ["launcher=pytorch", "gpus=4"] and Launch().identity("seg") == []
    with pytest.raises(PipelineError, match="partition is required"):
        Launch.from_config(dict(launcher="slurm"), {})
    with pytest.raises(PipelineError, match="launcher must be one of"):
        Launch.from_config(dict(launcher="mpi"), {})


@pytest.mark.parametrize("config", sorted((ROOT / "configs" / "pipeline").glob("*.py")), ids=lambda p: p.stem)
@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_every_shipped_pipeline_config_resolves(config, quick):
    """demo_methods.py once inherited demo.py's transfer_methods (uniform, dar) without a dar method, and
    only its --quick form was ever loaded."""
    spec = load_spec(config, quick=quick)
    names = [m.name for m in spec.methods]
    assert spec.methods and spec.tasks and set(spec.transfer_methods) <= set(names)


def test_a_dict_given_on_the_command_line_is_one_line_not_a_traceback(tmp_path):
    """mmengine's ``--cfg-options`` parses ``key={...}`` as text; the entry's overrides must be a dict."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    value = "{'train_dataloader.batch_size':0}"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "pipeline.py"), str(DEMO), "--report-dir",
                        str(tmp_path / "r"), "--cfg-options", f"tasks.4.cfg_options={value}"],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"error: tasks[4].cfg_options must be a dict of config overrides, got str {value!r}; --cfg-options")
    assert not (tmp_path / "r").exists()
    with pytest.raises(PipelineError, match=r"^pretrain_cfg_options must be a dict .* got list \[1\]"):
        load_spec(write_config(tmp_path, "pretrain_cfg_options = [1]"))
