"""The method protocol: one registry, checked params, and the generic services the trainer gives a method
(loss weights, LR factor, counted forwards, a forward pass over dataset indices, dumps, extra log fields)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pretrain.cli import default_hooks
from pretrain.config import build_config
from pretrain.env import Env
from pretrain.errors import ConfigError
from pretrain.methods import METHODS, build_method, list_methods, load_all, register_method
from pretrain.methods.base import EpochResult, MethodParams, RunInfo, SubsetMethod
from pretrain.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
TINY = {"model": {"arch": "test_resnet"},
        "data": {"type": "digits", "img_size": 16, "batch_size": 32, "scale": (0.5, 1.0), "hflip": 0.0},
        "optim": {"lr": 0.8}, "schedule": {"epochs": 1, "milestones": []},
        "runtime": {"cpu_threads": 1}, "seed": 0}


@dataclass(frozen=True)
class ProbeParams(MethodParams):
    weight: float = 1.0
    lr_factor: float = 1.0


class Probe(SubsetMethod):
    """A test method: constant loss weight and LR factor, a dump and a log field at each epoch's end."""

    Params = ProbeParams

    def lr_factor(self, epoch):
        return self.params.lr_factor

    def select(self, batch, step):
        batch.weights = torch.full((batch.images.shape[0],), self.params.weight)
        self.services.count_forwards(8, 3)  # as a scoring pass of 3 samples at 8 px would
        return batch

    def end_epoch(self, epoch):
        super().end_epoch(epoch)
        return EpochResult(dump={"epoch": np.array([epoch])}, log={"probe": epoch})


@pytest.fixture
def probe():
    load_all()
    register_method("probe_test")(Probe)
    yield "probe_test"
    del METHODS["probe_test"]


def _trainer(tmp_path, method: dict, hooks=None) -> Trainer:
    cfg = build_config({**TINY, "method": method})
    return Trainer(cfg, Env(), tmp_path, hooks=default_hooks(cfg) if hooks is None else hooks)


def test_registry_rejects_duplicates_and_lists_every_method(probe, capsys):
    with pytest.raises(KeyError, match="'probe_test' is already registered"):
        register_method("probe_test")(Probe)
    with pytest.raises(ConfigError, match=r"method.type must be one of .*, got 'darr' \(did you mean dar\?\)"):
        build_method({"type": "darr"}, RunInfo(10, 2))
    from pretrain.cli import train_main

    assert train_main(["--list-methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == [name for name, _ in list_methods()] == list(METHODS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # every method has its one-line description


@pytest.mark.parametrize("method, fragment", [
    ({"type": "dar", "kep": 0.5}, "method 'dar' does not take kep (did you mean keep?"),
    ({"type": "online", "beta": -1.0}, "beta must be a finite number >= 0"),
    ({"type": "fixed_subset", "budget": 0.5, "match": {"keep": 0.9}}, "exactly one of"),
    ({"type": "shortened", "match": {"warmup": 1, "intervall": 2}}, "method.match does not take intervall (did you mean interval?"),
])
def test_method_params_are_checked_with_one_line(method, fragment):
    with pytest.raises(ConfigError) as err:
        build_method(method, RunInfo(100, 6, 32, 32))
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("section, key, fragment", [
    ("optim", "weight_decey", "optim does not take weight_decey (did you mean weight_decay?"),
    ("runtime", "checkpoint_intervall", "did you mean checkpoint_interval?"),
    ("schedule", "milestone", "did you mean milestones?"),
])
def test_config_schema_rejects_unknown_keys_with_a_suggestion(section, key, fragment):
    cfg = {**TINY, "method": {"type": "uniform"}, section: {**TINY.get(section, {}), key: 1}}
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        build_config(cfg)
    with pytest.raises(ConfigError, match=re.escape("does not take sedd (did you mean seed?")):
        build_config({**TINY, "method": {"type": "uniform"}, "sedd": 1})


def test_loss_weights_and_lr_factor_are_applied_by_the_trainer(probe, tmp_path):
    """run_step trains on mean(w * loss) at lr x factor: the same update by hand on a twin trainer."""
    weighted = _trainer(tmp_path, {"type": probe, "weight": 2.5, "lr_factor": 0.5}, hooks=[])
    twin = _trainer(tmp_path, {"type": probe}, hooks=[])
    weighted.steps = twin.steps = weighted.feed.steps_in_epoch()
    images, targets, indices = next(weighted.feed.begin(1))
    weighted.run_step(weighted.to_device(images, targets, indices))

    twin.scheduler.step(0.0)
    base_lr = twin.optimizer.param_groups[0]["lr"]
    for group in twin.optimizer.param_groups:
        group["lr"] *= 0.5
    losses = F.cross_entropy(twin.model(twin.model_input(images)).float(), targets, reduction="none")
    twin.optimizer.zero_grad()
    (2.5 * losses).mean().backward()
    twin.optimizer.step()
    assert weighted.optimizer.param_groups[0]["lr"] == 0.5 * base_lr
    a, b = weighted.model.state_dict(), twin.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = _trainer(tmp_path, {"type": probe}, hooks=[])  # and the weights did matter
    plain.steps = weighted.steps
    plain.run_step(plain.to_device(images, targets, indices))
    assert not all(torch.equal(a[k], v) for k, v in plain.model.state_dict().items())


def test_forward_samples_leaves_the_model_as_it_was(probe, tmp_path):
    t = _trainer(tmp_path, {"type": probe}, hooks=[])
    t.train_set.set_epoch(1)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    idx = torch.tensor([5, 0, 700, 5, 1346])
    for batch_stats in (False, True):
        losses, logits = t.method.services.forward_samples(idx, batch_stats=batch_stats)
        assert losses.shape == (5,) and logits.shape == (5, 10) and losses.dtype == logits.dtype == torch.float32
        torch.testing.assert_close(losses[0], losses[3])  # same sample, same augmented view, same loss
        assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
        assert t.model.training and all(m.training for m in t.model.modules())
    t.model.eval()
    with torch.no_grad():
        x = torch.stack([t.train_set[i][0] for i in idx.tolist()])
        expect = t.model(t.model_input(x)).float()
    torch.testing.assert_close(t.method.services.forward_samples(idx)[1], expect)
    assert t.meter.forwards == {16: 15}  # three passes of 5 samples at the training resolution


def test_a_method_dumps_logs_and_counts_through_the_hooks(probe, tmp_path):
    """One real epoch: the method's dump lands in selection/, its log field in log.jsonl, its counted
    forwards in selection_flops, its loss weights in the training (via select)."""
    t = _trainer(tmp_path, {"type": probe, "weight": 1.0})
    summary = t.train()
    line = [ln for ln in (tmp_path / "log.jsonl").read_text().splitlines()][0]
    import json

    record = json.loads(line)
    assert record["probe"] == 1 and np.load(tmp_path / "selection" / "epoch_001.npz")["epoch"].tolist() == [1]
    assert record["selection_flops"] == pytest.approx(t.forward_flops(8) * 3 * t.steps)
    assert summary["relative_cost_flops"] > summary["relative_cost_samples"] == 1.0


def test_trainer_plan_feed_cli_and_cost_name_no_method():
    """The promise of the protocol: the loop and everything around it know methods only by the protocol."""
    load_all()
    names = sorted(METHODS, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
    hits = []
    loop = ("trainer", "hooks", "services", "plan", "feed", "cli", "cost", "config", "env", "checkpoint", "errors")
    for path in [ROOT / "pretrain" / f"{name}.py" for name in loop]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.name}:{n}: {line.strip()}")
    assert hits == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FORWARD_WORKER = """
import sys, torch, torch.distributed as dist
from pretrain.config import build_config
from dar_common.process_group import close_distributed, init_process_group
from pretrain.env import Env
from pretrain.trainer import Trainer
rank, port, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
cfg = build_config({"model": {"arch": "test_resnet"}, "data": {"type": "digits", "img_size": 16, "batch_size": 4},
                    "optim": {"lr": 0.1}, "schedule": {"epochs": 1}, "method": {"type": "uniform"},
                    "runtime": {"cpu_threads": 1}, "seed": 0})
t = Trainer(cfg, Env(rank=rank, world=2), work, hooks=[])
t.train_set.set_epoch(1)
idx = torch.tensor([3, 9, 1, 3, 1000, 7, 12])  # 7 samples: rank 0 forwards 4, rank 1 forwards 3
losses, logits = t.method.services.forward_samples(idx)
t.model.eval()
with torch.no_grad():
    expect = t.model(t.model_input(torch.stack([t.train_set[i][0] for i in idx.tolist()]))).float()
assert torch.allclose(logits, expect, atol=1e-5), (logits - expect).abs().max()
assert torch.allclose(losses, torch.nn.functional.cross_entropy(expect, torch.tensor([t.train_set[i][1] for i in idx.tolist()]), reduction="none"), atol=1e-5)
assert t.meter.forwards == {16: 4 - rank}, t.meter.forwards
print("forward ok")
close_distributed()
"""


@pytest.mark.slow
def test_forward_samples_on_two_gloo_ranks_gives_every_rank_all_results(tmp_path):
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", FORWARD_WORKER, str(r), port, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == "forward ok"
