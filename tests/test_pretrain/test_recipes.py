"""The recipe keys reach timm's factories; our A3 config is what timm's train.py builds for A3.

The A3 check: the settings of "ResNet strikes back" procedure A3 are written below from the paper
(arXiv 2110.00476, Table 1) and timm's published A3 arguments, as the argparse namespace timm's
``train.py`` would hold (its defaults for everything A3 leaves alone); from it the test builds what
``train.py`` builds -- ``create_optimizer_v2(**optimizer_kwargs(args))``, ``create_scheduler_v2(
**scheduler_kwargs(args))`` stepped per epoch, ``create_transform`` with ``resolve_data_config``, ``Mixup(
**mixup_args)``, the loss it picks -- and compares it with what our trainer builds from
``configs/pretrain/imagenet_r50_rsb_a3.py``. Nothing is read from our config to make the expectation.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch
from helpers import harness
from mmengine import Config
from timm.data import Mixup, create_transform, resolve_data_config
from timm.loss import BinaryCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs

from pretrain.cli import train_main
from pretrain.config import EmaConfig, LossConfig, build_config
from pretrain.data import build_transform
from pretrain.methods import build_method
from pretrain.methods.base import RunInfo
from pretrain.models import build_model
from pretrain.recipe import BatchMixer, Criterion, Ema, build_optimizer, build_scheduler, schedule_time

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"
WORLD = 8  # A3: 8 GPUs x 256 = 2048

# arXiv 2110.00476, Table 1, column A3
PAPER_A3 = dict(epochs=100, train_res=160, test_res=224, batch=2048, optimizer="lamb", lr=8e-3, weight_decay=0.02,
                sched="cosine", warmup_epochs=5, label_smoothing=0.0, stoch_depth=0.0, rand_augment=(6, 0.5),
                mixup=0.1, cutmix=1.0, erasing=0.0, ema=False, test_crop_ratio=0.95, bce=True)
# timm's published A3 arguments (the RSB weights release) beyond the table
RELEASE_A3 = dict(bce_target_thresh=0.2, warmup_lr=1e-4, min_lr=1e-6)


def train_py_args() -> argparse.Namespace:
    """timm train.py's namespace for A3: its argparse defaults, then the A3 flags."""
    m, std = PAPER_A3["rand_augment"]
    return argparse.Namespace(
        # train.py defaults for what A3 does not set
        model="resnet50", momentum=0.9, opt_eps=None, opt_betas=None, layer_decay=None, opt_args=None,
        decay_rate=0.1, decay_epochs=90, decay_milestones=[90, 180, 270], cooldown_epochs=0, warmup_prefix=False,
        lr_noise=None, lr_noise_pct=0.67, lr_noise_std=1.0, lr_cycle_mul=1.0, lr_cycle_decay=0.5, lr_cycle_limit=1,
        lr_k_decay=1.0, sched_on_updates=False, scale=[0.08, 1.0], ratio=[3 / 4, 4 / 3], hflip=0.5, vflip=0.0,
        color_jitter=0.4, train_interpolation="random", mixup_prob=1.0, mixup_switch_prob=0.5, mixup_mode="batch",
        cutmix_minmax=None, bce_sum=False, bce_pos_weight=None, remode="pixel", recount=1, grad_accum_steps=1,
        prefetcher=True, input_size=None, mean=None, std=None, interpolation="", seed=42,
        # A3
        opt=PAPER_A3["optimizer"], lr=PAPER_A3["lr"], weight_decay=PAPER_A3["weight_decay"],
        epochs=PAPER_A3["epochs"], sched=PAPER_A3["sched"], warmup_epochs=PAPER_A3["warmup_epochs"],
        warmup_lr=RELEASE_A3["warmup_lr"], min_lr=RELEASE_A3["min_lr"],
        aa=f"rand-m{m}-mstd{std}-inc1",  # timm's RandAugment string: magnitude, its std, increasing ops
        mixup=PAPER_A3["mixup"], cutmix=PAPER_A3["cutmix"], smoothing=PAPER_A3["label_smoothing"],
        bce_loss=PAPER_A3["bce"], bce_target_thresh=RELEASE_A3["bce_target_thresh"], reprob=PAPER_A3["erasing"],
        drop_path=PAPER_A3["stoch_depth"], model_ema=PAPER_A3["ema"], img_size=PAPER_A3["train_res"],
        crop_pct=PAPER_A3["test_crop_ratio"], batch_size=PAPER_A3["batch"] // WORLD, num_classes=1000,
    )


def resnet50():
    import timm

    with torch.device("meta"):
        return timm.create_model("resnet50", pretrained=False)


@pytest.fixture(scope="module")
def a3():
    return build_config(Config.fromfile(str(CONFIGS / "imagenet_r50_rsb_a3.py")))


def _groups(optimizer, model):
    names = {id(p): n for n, p in model.named_parameters()}
    return sorted((g["weight_decay"], tuple(sorted(names[id(p)] for p in g["params"]))) for g in optimizer.param_groups)


def test_a3_optimizer_is_train_pys(a3):
    args = train_py_args()
    ours_model, theirs_model = resnet50(), resnet50()
    o = a3.optim
    ours = build_optimizer(ours_model, o, o.lr * a3.data.batch_size * WORLD * o.accum_steps / o.lr_batch)
    theirs = create_optimizer_v2(theirs_model, **optimizer_kwargs(cfg=args))
    assert type(ours) is type(theirs)
    assert _same(ours.defaults, theirs.defaults)
    assert _groups(ours, ours_model) == _groups(theirs, theirs_model)  # weight decay off biases and norms alike
    assert o.accum_steps == args.grad_accum_steps and a3.data.batch_size * WORLD == PAPER_A3["batch"]


def _same(a: dict, b: dict) -> bool:
    assert a.keys() == b.keys(), set(a) ^ set(b)
    for k in a:
        if isinstance(a[k], float):
            assert math.isclose(a[k], b[k], rel_tol=1e-12), (k, a[k], b[k])
        else:
            assert a[k] == b[k], (k, a[k], b[k])
    return True


def test_a3_lr_every_epoch_is_train_pys(a3):
    args = train_py_args()
    plan = build_method(a3.method, RunInfo(1000, a3.schedule.epochs, 256, 160, WORLD)).plan()

    def sgd():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.lr)

    ours_opt, theirs_opt = sgd(), sgd()
    ours = build_scheduler(ours_opt, a3.schedule, plan)
    theirs, num_epochs = create_scheduler_v2(theirs_opt, **scheduler_kwargs(args), updates_per_epoch=1000)
    assert num_epochs == plan.epochs == args.epochs
    steps = 7  # LR inside an epoch: constant, as train.py's per-epoch stepping
    for epoch in range(1, num_epochs + 1):
        theirs.step(epoch - 1)  # train.py: step(start_epoch), then step(epoch + 1) after each epoch
        for step in (0, steps // 2, steps - 1):
            ours.step(schedule_time(a3.schedule, epoch, step, steps))
            assert math.isclose(ours_opt.param_groups[0]["lr"], theirs_opt.param_groups[0]["lr"], rel_tol=1e-12), epoch


def test_a3_transforms_are_train_pys_and_validate_pys(a3):
    args = train_py_args()
    data_config = resolve_data_config(vars(args), model=resnet50())
    theirs_train = create_transform(data_config["input_size"], is_training=True, scale=args.scale, ratio=args.ratio,
                                    hflip=args.hflip, vflip=args.vflip, color_jitter=args.color_jitter,
                                    auto_augment=args.aa, interpolation=args.train_interpolation,
                                    mean=data_config["mean"], std=data_config["std"], re_prob=args.reprob,
                                    re_mode=args.remode, re_count=args.recount, use_prefetcher=args.prefetcher)
    ours_train = build_transform(a3.raw["data"], train=True, uint8=True)
    assert repr(ours_train) == repr(theirs_train)
    # the published 224-px figure: validate.py at the test resolution, the model's interpolation, crop 0.95
    test = resolve_data_config({"img_size": PAPER_A3["test_res"], "crop_pct": PAPER_A3["test_crop_ratio"]},
                               model=resnet50())
    theirs_eval = create_transform(test["input_size"], is_training=False, interpolation=test["interpolation"],
                                   crop_pct=test["crop_pct"], mean=test["mean"], std=test["std"], use_prefetcher=True)
    assert repr(build_transform(a3.raw["data"], train=False, uint8=True)) == repr(theirs_eval)
    assert a3.data.re_prob in (None, 0.0)  # train.py's prefetcher erases nothing at reprob 0


def test_a3_mixup_loss_model_and_ema_are_train_pys(a3):
    args = train_py_args()
    theirs_mixup = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                         prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                         label_smoothing=args.smoothing, num_classes=args.num_classes)
    ours = BatchMixer(a3.mixup, a3.optim.label_smoothing, 1000, seed=0)
    assert vars(ours.mixup) == vars(theirs_mixup)
    # train.py with mixup active and --bce-loss: BinaryCrossEntropy(target_threshold, sum_classes, pos_weight)
    theirs_loss = BinaryCrossEntropy(target_threshold=args.bce_target_thresh, sum_classes=args.bce_sum,
                                     pos_weight=args.bce_pos_weight)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 1000, generator=g)
    targets = torch.softmax(3 * torch.randn(8, 1000, generator=g), 1)
    per_sample = Criterion(a3.loss, a3.optim.label_smoothing)(logits, targets)
    assert per_sample.shape == (8,)
    assert torch.allclose(per_sample.mean(), theirs_loss(logits, targets), rtol=1e-6)
    assert a3.model.kwargs.get("drop_path_rate", 0.0) == args.drop_path
    assert (a3.ema is not None) == args.model_ema


def test_a3_variants_change_only_the_method():
    base = Config.fromfile(str(CONFIGS / "imagenet_r50_rsb_a3.py")).to_dict()
    for name, method in (("dar", "dar"), ("infobatch", "infobatch")):
        variant = Config.fromfile(str(CONFIGS / f"imagenet_r50_rsb_a3_{name}.py")).to_dict()
        assert variant.pop("method")["type"] == method
        assert {k: v for k, v in variant.items() if k != "method"} == {k: v for k, v in base.items() if k != "method"}


# -- the criterion is timm's losses, per sample ---------------------------------------------------------------
@pytest.mark.parametrize("loss, smoothing, dense", [("ce", 0.0, False), ("ce", 0.1, False), ("ce", 0.1, True),
                                                    ("bce", 0.1, False), ("bce", 0.0, True), ("bce_thresh", 0.0, True),
                                                    ("bce_sum", 0.0, True)])
def test_criterion_means_are_timms_losses(loss, smoothing, dense):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 10, generator=g)
    targets = torch.softmax(2 * torch.randn(6, 10, generator=g), 1) if dense else torch.randint(0, 10, (6,), generator=g)
    cfg = {"ce": LossConfig(), "bce": LossConfig(type="bce"), "bce_thresh": LossConfig(type="bce", bce_target_thresh=0.2),
           "bce_sum": LossConfig(type="bce", bce_sum=True)}[loss]
    per_sample = Criterion(cfg, smoothing)(logits, targets)
    if loss == "ce":
        theirs = SoftTargetCrossEntropy() if dense else LabelSmoothingCrossEntropy(smoothing)
    else:
        theirs = BinaryCrossEntropy(smoothing=smoothing, target_threshold=cfg.bce_target_thresh, sum_classes=cfg.bce_sum)
    assert per_sample.shape == (6,)
    assert torch.allclose(per_sample.mean(), theirs(logits, targets), rtol=1e-6, atol=1e-7)


def test_ema_is_timms_model_ema_v3_and_resumes():
    from timm.utils import ModelEmaV3

    model = build_model("test_resnet", 10)
    cfg = EmaConfig(decay=0.5, warmup=True)
    ours, theirs = Ema(cfg, model), ModelEmaV3(model, decay=0.5, use_warmup=True)
    for k in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * (k + 1))
        ours.update(model)
        theirs.update(model, step=k + 1)
    assert all(torch.equal(a, b) for a, b in zip(ours.module.state_dict().values(), theirs.module.state_dict().values(), strict=True))
    again = Ema(cfg, build_model("test_resnet", 10))
    again.load_state_dict(ours.state_dict())
    assert again.updates == 3 and all(torch.equal(a, b) for a, b in zip(again.module.state_dict().values(),
                                                                        ours.module.state_dict().values(), strict=True))


def test_stochastic_depth_reaches_the_model_through_model_kwargs():
    model = build_model("resnet18", 10, drop_path_rate=0.1)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.1)


# -- bad recipe keys: one error line, exit 2, before any data ---------------------------------------------------
@pytest.mark.parametrize("option, message", [
    ("optim.opt=adamww", "error: optim.opt 'adamww' is not a timm optimizer (did you mean adamw?)"),
    ("optim.kwargs.bogus=1", "error: optim: timm's 'lamb' rejects {'bogus': 1}: TypeError"),
    ("optim.kwargs.lr=1", "error: optim.kwargs must not set lr (set optim.lr instead)"),
    ("optim.accum_steps=0", "error: optim.accum_steps must be a positive integer, got 0"),
    ("schedule.sched=cosin", "error: schedule.sched must be one of step, cosine, tanh, poly, constant, wsd, rsqrt, "
                             "got 'cosin' (did you mean cosine?)"),
    ("data.auto_augment=rand-q9", "error: data: timm's create_transform rejects the training transform"),
    ("mixup.mixup_alpa=0.2", "error: mixup does not take mixup_alpa (did you mean mixup_alpha?"),
    ("mixup.mode=row", "error: mixup.mode must be 'batch', 'pair' or 'elem', got 'row'"),
    ("loss.type=focal", "error: loss.type must be 'ce' or 'bce', got 'focal'"),
    ("ema.publish=best", "error: ema.publish must be 'raw' or 'ema', got 'best'"),
    ("ema=abc", "error: ema must be a dict of its keys (decay, "),
    ("ema.warmup=maybe", "error: ema.warmup must be True or False, got 'maybe'"),
    ("model.kwargs.drop_pth_rate=0.1", "error: model.kwargs.drop_pth_rate is not an argument of timm's test_resnet "
                                       "(ResNet; did you mean drop_path_rate?)"),
    ("model.kwargs.num_classes=3", "error: model.kwargs.num_classes is set by the run"),
    ("model.kwargs=abc", "error: model.kwargs must be a dict of timm.create_model arguments, got 'abc'"),
])
def test_bad_recipe_keys_are_one_error_line(option, message, capsys, tmp_path):
    code = train_main([str(CONFIGS / "tiny_digits_dar_mixup.py"), "--work-dir", str(tmp_path), "--dry-run",
                       "--cfg-options", option])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err


def test_a_misspelt_model_kwarg_stops_a_run_before_it_writes(tmp_path):
    """Not a dry run: tools/train.py refuses it before the work dir is written (it used to be a TypeError
    traceback from the model's constructor, after the config and git revision were written)."""
    err = harness.rejected("tiny_digits_dar.py", tmp_path / "run", ["model.kwargs.drop_pth_rate=0.1"])
    assert err == ["error: model.kwargs.drop_pth_rate is not an argument of timm's test_resnet "
                   "(ResNet; did you mean drop_path_rate?)"], err


def test_gradient_accumulation_updates_every_k_steps_with_the_mean_gradient(tmp_path):
    """optim.accum_steps=2: no update after the first step; after the second, the gradient stepped with is
    the mean of the two batches' mean-loss gradients (timm's train.py divides each loss by the group)."""
    import copy

    import torch.nn.functional as F

    from pretrain.env import Env
    from pretrain.trainer import Trainer

    cfg = Config.fromfile(str(CONFIGS / "tiny_digits_dar.py"))
    cfg.merge_from_dict({"optim.accum_steps": 2})
    trainer = Trainer(build_config(cfg), Env(), tmp_path)
    trainer.steps = trainer.feed.steps_in_epoch()
    trainer.model.train()
    it = iter(trainer.feed.begin(1, 0))
    batches = [trainer.to_device(*next(it)) for _ in range(2)]
    ref = copy.deepcopy(trainer.model)
    grads = [torch.autograd.grad(F.cross_entropy(ref(b.images.clone()), b.targets), list(ref.parameters()))
             for b in batches]
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.run_step(batches[0])
    assert all(torch.equal(p, q) for p, q in zip(trainer.model.parameters(), before, strict=True))  # no update yet
    trainer.run_step(batches[1])
    got = [p.grad for p in trainer.model.parameters()]
    want = [(g + h) / 2 for g, h in zip(*grads, strict=True)]
    assert all(torch.allclose(g, w, rtol=1e-4, atol=1e-6) for g, w in zip(got, want, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(trainer.model.parameters(), before, strict=True))  # updated
