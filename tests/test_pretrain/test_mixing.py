"""Per-sample losses under Mixup/CutMix and BCE, against timm's own ``Mixup`` (docs/selection.md, "Losses
under mixing").

The documented rule: every method records, for the dataset index at batch position i, the unreduced loss
of position i against its mixed target (timm pairs position i with B-1-i); the scoring passes of online
and Selective Backprop score the clean (unmixed) images, and the picked batch is mixed afterwards. Each
test replays timm's ``Mixup`` on a copy of the batch from the mixer's saved NumPy state and computes the
expected losses by hand from the formulas (not through our criterion).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine import Config
from timm.data import Mixup

from pretrain.config import build_config
from pretrain.env import Env
from pretrain.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"


def make_trainer(config: str, tmp_path: Path, **options) -> Trainer:
    cfg = Config.fromfile(str(CONFIGS / config))
    cfg.merge_from_dict({"optim.accum_steps": 1, **options})
    trainer = Trainer(build_config(cfg), Env(), tmp_path)
    trainer.steps = trainer.feed.steps_in_epoch()  # as run_epoch sets it
    trainer.model.train()
    return trainer


def replay_mixup(trainer: Trainer, state: dict, images: torch.Tensor, targets: torch.Tensor):
    """timm's Mixup with the run's settings, drawing from the mixer's saved stream: (images, targets).

    An odd batch: the first B-1 positions are mixed, the last keeps its smoothed one-hot target."""
    m = trainer.cfg.mixup
    mix = Mixup(mixup_alpha=m.mixup_alpha, cutmix_alpha=m.cutmix_alpha, cutmix_minmax=m.cutmix_minmax, prob=m.prob,
                switch_prob=m.switch_prob, mode=m.mode, correct_lam=m.correct_lam,
                label_smoothing=trainer.cfg.optim.label_smoothing, num_classes=10)
    saved = np.random.get_state()
    np.random.set_state(state["numpy"])
    try:
        x = images.clone()
        even = len(x) - len(x) % 2
        _, t = mix(x[:even], targets[:even])
    finally:
        np.random.set_state(saved)
    if even < len(x):
        s = trainer.cfg.optim.label_smoothing
        last = torch.full((1, 10), s / 10).scatter_(1, targets[even:].view(1, 1), 1 - s + s / 10)
        t = torch.cat([t, last])
    return x, t


def by_hand(loss: str, logits: torch.Tensor, target: torch.Tensor, thresh: float | None) -> torch.Tensor:
    """The documented per-sample loss: soft-target CE, or BCE (optionally thresholded) averaged over classes."""
    if loss == "ce":
        return -(target * logits.log_softmax(1)).sum(1)
    if thresh is not None:
        target = (target > thresh).float()
    return -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)).mean(1)


def one_step(trainer: Trainer, batch):
    """Run one real step; the StepRecord the method got, the replayed (images, targets), the logits by hand."""
    state = copy.deepcopy(trainer.mixer.state_dict())
    clean = batch.images.clone()
    ref = copy.deepcopy(trainer.model)
    records = []
    original = trainer.method.record
    trainer.method.record = lambda rec: (records.append(rec), original(rec))[1]
    trainer.run_step(batch)
    x, t = replay_mixup(trainer, state, clean, batch.targets)
    with torch.no_grad():
        logits = ref(x).float()
    return records[0], x, t, logits


@pytest.mark.parametrize("loss, mode, size", [("bce", "batch", 32), ("ce", "batch", 32), ("bce", "elem", 7),
                                              ("ce", "pair", 8)])
def test_each_index_records_its_positions_loss_against_its_mixed_target(tmp_path, loss, mode, size):
    """DaR under timm's Mixup/CutMix: index i's recorded loss is position i's loss vs its mixed target."""
    options = {"loss.type": loss, "mixup.mode": mode, "mixup.prob": 1.0, "optim.label_smoothing": 0.1}
    if loss == "ce":
        options["loss.bce_target_thresh"] = None
    trainer = make_trainer("tiny_digits_dar_mixup.py", tmp_path, **options)
    images, targets, indices = next(iter(trainer.feed.begin(1, 0)))
    batch = trainer.to_device(images, targets, indices)
    if size < len(indices):
        batch = batch.take(torch.arange(size))
    rec, x, t, logits = one_step(trainer, batch)
    thresh = trainer.cfg.loss.bce_target_thresh if loss == "bce" else None
    expected = by_hand(loss, logits, t, thresh)
    assert torch.equal(rec.indices, batch.indices)  # credited to the sample at each position, in order
    assert torch.allclose(rec.losses, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(rec.targets, batch.targets)  # correctness (KAKURENBO) is against the hard label
    mixed = t.max(1).values < 1 - 0.1 + 0.01 - 1e-4  # rows that are not a smoothed one-hot
    assert mixed[: size - size % 2].any(), "the replayed batch must really be mixed"
    assert not torch.allclose(rec.losses[:-1], expected.flip(0)[:-1], rtol=1e-3)  # not credited to the partner
    if size % 2:
        assert not mixed[-1]  # an odd batch's last position trains unmixed
    if size == 32:  # DaR's loss table holds exactly these values for the batch's indices
        trainer.method.sampler.sync()
        assert torch.allclose(trainer.method.sampler.loss_table[indices], expected, rtol=1e-5, atol=1e-6)


def test_infobatch_weights_each_position_of_a_mixed_batch(tmp_path):
    """InfoBatch's 1/(1-r) multiplies the loss of the position whose sample is a kept well-learned one:
    the gradient stepped with is that of sum_i w_i l_i / B, l_i against the mixed targets."""
    trainer = make_trainer("tiny_digits_infobatch_mixup.py", tmp_path)
    method = trainer.method
    method.weights = torch.where(torch.arange(method.run.num_samples) % 3 == 0, 2.0, 1.0)
    method.weighted = True
    images, targets, indices = next(iter(trainer.feed.begin(1, 0)))
    batch = trainer.to_device(images, targets, indices)
    state = copy.deepcopy(trainer.mixer.state_dict())
    clean = batch.images.clone()
    ref = copy.deepcopy(trainer.model)
    trainer.run_step(batch)
    x, t = replay_mixup(trainer, state, clean, batch.targets)
    w = method.weights[indices]
    assert set(w.tolist()) == {1.0, 2.0}
    loss = (w * by_hand("bce", ref(x).float(), t, trainer.cfg.loss.bce_target_thresh)).sum() / len(indices)
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    got = [p.grad for p in trainer.model.parameters()]
    assert all(torch.allclose(g, h, rtol=1e-4, atol=1e-6) for g, h in zip(got, grads, strict=True))
    swapped = (w.flip(0) * by_hand("bce", ref(x).float(), t, trainer.cfg.loss.bce_target_thresh)).sum() / len(indices)
    wrong = torch.autograd.grad(swapped, list(ref.parameters()))
    assert not all(torch.allclose(g, h, rtol=1e-3, atol=1e-5) for g, h in zip(got, wrong, strict=True))


@pytest.mark.parametrize("method, scorer", [
    ("online", "pretrain.selection.online.score_losses"),
    ("selective_backprop", "pretrain.methods.selective_backprop.score_losses"),
])
def test_scoring_passes_score_the_clean_images_and_the_pick_is_mixed(tmp_path, monkeypatch, method, scorer):
    """Online and Selective Backprop score the loaded (unmixed) images; the picked batch is then mixed."""
    import importlib

    options = {"method": {"type": method, **({"warmup_steps": 0, "cooldown_fraction": 0.0, "score_resolution": 16}
                                              if method == "online" else {"start": 0.0, "interrupt": 0})}}
    cfg = Config.fromfile(str(CONFIGS / "tiny_digits_dar_mixup.py"))
    cfg.merge_from_dict({"optim.accum_steps": 1})
    cfg.method = options["method"]
    trainer = Trainer(build_config(cfg), Env(), tmp_path)
    trainer.steps = trainer.feed.steps_in_epoch()
    trainer.model.train()
    module, name = scorer.rsplit(".", 1)
    module = importlib.import_module(module)
    real, scored = getattr(module, name), []
    monkeypatch.setattr(module, name, lambda model, images, *a, **k: (scored.append(images.clone()), real(model, images, *a, **k))[1])
    images, targets, indices = next(iter(trainer.feed.begin(1, 0)))
    batch = trainer.to_device(images, targets, indices)
    clean = batch.images.clone()
    picked, trained = [], []
    select, net = trainer.method.select, trainer.net
    trainer.method.select = lambda b, step: (lambda out: (picked.append((out.images.clone(), out.targets.clone())), out)[1])(select(b, step))
    trainer.net = lambda x: (trained.append(x.clone()), net(x))[1]
    state = copy.deepcopy(trainer.mixer.state_dict())
    trainer.run_step(batch)
    assert len(scored) == 1 and torch.equal(scored[0], clean)  # the whole loaded batch, unmixed
    pick_images, pick_targets = picked[0]
    assert pick_images.shape[0] < clean.shape[0]  # it did select
    assert all(any(torch.equal(row, c) for c in clean) for row in pick_images)  # the picks are clean images
    x, t = replay_mixup(trainer, state, pick_images, pick_targets)
    assert torch.equal(x, trained[0])  # what trained is the picked batch mixed by timm's Mixup
    assert not torch.equal(x, pick_images)


# -- a malformed mixup section: one error line, exit 2 ------------------------------------------------------------
@pytest.mark.parametrize("option, message", [
    ("mixup={'mixup_alpha':0.2}", "error: mixup must be a dict of its keys (mixup_alpha, cutmix_alpha, "),
    ("mixup=[0.2,1.0]", "error: mixup must be a dict of its keys (mixup_alpha, cutmix_alpha, "),
    ("mixup.foo=1", "error: mixup does not take foo (takes: mixup_alpha, "),
    ("mixup.cutmix_minmax=5", "error: mixup.cutmix_minmax must be (min, max) with 0 < min < max <= 1, got 5"),
    ("mixup.cutmix_minmax=[a,b]", "error: mixup.cutmix_minmax must be (min, max) with 0 < min < max <= 1, got ('a', 'b')"),
    ("mixup.correct_lam=yes", "error: mixup.correct_lam must be True or False, got 'yes'"),
])
def test_a_malformed_mixup_is_one_error_line(option, message, capsys, tmp_path):
    from pretrain.cli import train_main

    code = train_main([str(CONFIGS / "tiny_digits_dar_mixup.py"), "--work-dir", str(tmp_path), "--dry-run",
                       "--cfg-options", option])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err


def test_mixup_that_is_not_a_dict_stops_a_run_before_it_writes(tmp_path):
    """Not a dry run: tools/train.py exits 2 with the line, the work dir untouched (it was a ValueError
    traceback from ``dict('abc')`` in ``build_section``)."""
    from helpers import harness

    err = harness.rejected("tiny_digits_dar.py", tmp_path / "run", ["mixup=abc"])
    assert len(err) == 1 and err[0].startswith("error: mixup must be a dict of its keys (mixup_alpha, ") and \
        err[0].endswith("got 'abc'; on the command line set its keys one by one, e.g. mixup.mixup_alpha=..."), err
