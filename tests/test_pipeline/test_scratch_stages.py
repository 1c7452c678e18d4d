"""The scratch entry of a pipeline (``scratch=True``): fine-tune+test stages from a randomly initialised
backbone for every transfer entry and seed, without pre-training, and each fine-tuning's seed is its run's."""
from __future__ import annotations

from pathlib import Path

import pytest

from transfer.study import stages as st
from transfer.study.errors import PipelineError
from transfer.study.runner import Runner
from transfer.study.spec import load_spec
from transfer.study.stages import Layout, Stage, finetune_command, plan

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "pipeline" / "demo.py"


@pytest.fixture(autouse=True)
def repo_cwd(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_scratch_stages_per_entry_and_seed_without_pretraining(tmp_path):
    spec = load_spec(DEMO, report_dir=str(tmp_path / "r"))
    assert spec.scratch and spec.transfer_seeds == (0, 1)
    stages = plan(spec)
    scratch = [s for s in stages if s.method == "scratch"]
    assert {(s.kind, s.entry, s.seed) for s in scratch} == {
        (k, t.name, seed) for k in ("finetune", "test") for t in spec.tasks for seed in spec.transfer_seeds}
    assert not any(s.kind in ("pretrain", "publish") and s.method == "scratch" for s in stages)
    per_entry = len(spec.transfer_methods) * len(spec.transfer_seeds) + len(spec.transfer_seeds)
    assert sum(s.kind == "finetune" for s in stages) == len(spec.tasks) * per_entry
    runner = Runner(spec, {m.name: "resnet18" for m in spec.methods}, show=False)
    ft = Stage("finetune", "scratch", 1, "seg")
    assert runner.dependency(ft) is None and runner.expected_digest(ft) is not None  # runnable at once
    args = finetune_command(spec, Layout(spec.report_dir), ft, None).tool_args
    assert args[args.index("--backbone") + 1] == "none" and "randomness.seed=1" in args
    assert "randomness.seed=1" in st.test_command(spec, Layout(spec.report_dir), Stage("test", "scratch", 1, "seg"),
                                               Path("x.pth")).tool_args


def test_fine_tuning_seed_is_the_runs_unless_the_options_set_one(tmp_path):
    spec = load_spec(DEMO, report_dir=str(tmp_path / "r"), cfg_options={"transfer_cfg_options": {"randomness.seed": 7}})
    args = finetune_command(spec, Layout(spec.report_dir), Stage("finetune", "dar", 1, "det"), Path("b.pth")).tool_args
    assert "randomness.seed=7" in args and "randomness.seed=1" not in args


def test_quick_has_no_scratch_and_a_method_named_scratch_is_refused(tmp_path):
    assert not load_spec(DEMO, quick=True).scratch
    config = tmp_path / "pipe.py"
    config.write_text(f"_base_ = ['{DEMO}']\nmethods = [dict(name='scratch', config='configs/pretrain/tiny_digits_uniform.py')]\n")
    with pytest.raises(PipelineError, match="'scratch' is reserved"):
        load_spec(config)
