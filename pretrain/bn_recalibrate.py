"""Precise BatchNorm statistics: recompute the running mean / variance over a uniform sample of the data.

A DaR run's last epochs train on the hardest samples only, so the BatchNorm running statistics (an
exponential average over the last few hundred batches) describe that subset, not the data; the DaP
paper leaves this open. ``bn_recalibrate=dict(samples=N, seed=S)`` in a pre-training config (after the
last epoch, before ``backbone.pth``) or ``tools/publish_model.py --recalibrate-bn N`` recompute them with
``torch.optim.swa_utils.update_bn``: running statistics reset, momentum ``None`` (a cumulative average
over the batches), one pass in train mode over ``N`` training images drawn uniformly without
replacement from the full training set by a generator seeded with ``S`` -- the training transform, as
"precise BN" does (Wu & Johnson 2021, "Rethinking BatchNorm"). Weights are not touched. Each batch has
``batch_size`` images except a last one, which is larger by at most one image (a batch of one cannot
be normalised in train mode); the cumulative average weighs batches equally.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, Dataset, Subset

from .backbone_file import model_from_state, read_config
from .data import build_dataset
from .errors import ConfigError
from .hooks import Hook
from .sections import BNRecalibrate


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def sample_indices(num_samples: int, samples: int, seed: int) -> list[int]:
    """``samples`` indices of ``range(num_samples)`` drawn uniformly without replacement (all if more)."""
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return order[:min(samples, num_samples)].tolist()


def batches_of(indices: list[int], batch_size: int) -> list[list[int]]:
    """Consecutive batches of ``batch_size``; a last batch of one joins the one before it."""
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] += batches.pop()
    return batches


def recalibration_loader(dataset: Dataset, samples: int, seed: int, batch_size: int, workers: int = 0) -> DataLoader:
    """The batches :func:`recalibrate_bn` averages over (a test can replay them)."""
    picked = sample_indices(len(dataset), samples, seed)
    return DataLoader(Subset(dataset, picked), batch_sampler=batches_of(list(range(len(picked))), batch_size),
                      num_workers=workers, generator=torch.Generator().manual_seed(seed))


def recalibrate_bn(model: nn.Module, dataset: Dataset, samples: int, seed: int = 0, batch_size: int = 64,
                   workers: int = 0) -> dict:
    """Replace ``model``'s BatchNorm running statistics by their average over a uniform sample (in place).

    ``dataset`` yields ``(image, target, ...)`` (uint8 items are normalised on the device with the
    dataset's ``normalize``). Returns what to record: samples, seed, batch size, batches.
    """
    if not has_batchnorm(model):
        raise ConfigError("bn_recalibrate: the model has no BatchNorm layer")
    device = next(model.parameters()).device
    normalize = getattr(dataset, "normalize", None)
    loader = recalibration_loader(dataset, samples, seed, batch_size, workers)

    def inputs() -> Iterator[torch.Tensor]:
        for images, *_ in loader:
            images = images.to(device, non_blocking=True)
            yield normalize(images) if normalize is not None else images

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # dropout / drop-path draws
        update_bn(inputs(), model)
    return {"samples": min(samples, len(dataset)), "seed": seed, "batch_size": batch_size, "batches": len(loader)}


class BNRecalibrateHook(Hook):
    """``bn_recalibrate=dict(samples=N, seed=S)``: after the last epoch's evaluation, recompute the BatchNorm
    statistics, evaluate again, and record both top-1s (the last epoch line's ``bn_recalibrate`` field and
    ``meta["bn_recalibrate"]``). The run's top-1 from then on -- that epoch line's ``top1``, the summary,
    the meta -- is the recalibrated backbone's, the one ``backbone.pth`` and the last checkpoint hold.
    Every rank recalibrates on the same sample, so all ranks keep identical statistics.
    """

    def __init__(self, settings: BNRecalibrate):
        self.settings, self.record = settings, None

    def before_train(self, trainer) -> None:
        if not has_batchnorm(trainer.model):
            raise ConfigError(f"bn_recalibrate: {trainer.cfg.model.arch} has no BatchNorm layer")
        if self.record is not None:
            trainer.meta_extra["bn_recalibrate"] = self.record

    def after_epoch_train(self, trainer) -> None:
        if trainer.progress.epoch != trainer.plan.epochs:
            return
        rec, s = trainer.record, self.settings
        if rec.top1 is None:
            rec.top1, rec.top5 = trainer.evaluate()
        start = time.perf_counter()
        done = recalibrate_bn(trainer.model, trainer.train_set, s.samples, s.seed,
                              s.batch_size or trainer.cfg.data.batch_size, trainer.cfg.data.num_workers)
        wall = time.perf_counter() - start
        top1, top5 = trainer.evaluate()
        self.record = {**done, "top1_before": rec.top1, "top5_before": rec.top5, "top1_after": top1,
                       "top5_after": top5, "wall_s": wall,
                       "flops": trainer.forward_flops(trainer.cfg.data.img_size) * done["samples"]}
        rec.top1, rec.top5 = top1, top5
        rec.extra["bn_recalibrate"] = dict(self.record)
        trainer.meta_extra["bn_recalibrate"] = dict(self.record)

    def state_dict(self) -> dict:
        return {"record": self.record}

    def load_state_dict(self, state: dict) -> None:
        self.record = (state or {}).get("record")


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 64, workers: int = 0) -> tuple[float, float]:
    """Top-1 / top-5 (%) over ``dataset`` in eval mode, one process (the trainer's is distributed)."""
    device = next(model.parameters()).device
    normalize = getattr(dataset, "normalize", None)
    was_training = model.training
    model.eval()
    hits1 = hits5 = total = 0
    for images, targets, *_ in DataLoader(dataset, batch_size, num_workers=workers,
                                          generator=torch.Generator().manual_seed(0)):
        images = images.to(device)
        logits = model(normalize(images) if normalize is not None else images).float().cpu()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices == targets[:, None]
        hits1, hits5, total = hits1 + int(top[:, 0].sum()), hits5 + int(top.any(1).sum()), total + len(targets)
    model.train(was_training)
    return 100.0 * hits1 / total, 100.0 * hits5 / total


def recalibrate_checkpoint(state_dict: dict[str, torch.Tensor], meta: dict, config: dict | None,
                           settings: BNRecalibrate, source: str = "checkpoint", device: str = "cpu",
                           workers: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """Recalibrated weights and meta of a saved backbone, on the training data of its run's ``config``.

    Top-1 / top-5 before and after go into ``meta["bn_recalibrate"]``; ``meta`` top-1 / top-5 become the
    recalibrated model's (the weights published with it).
    """
    if not config or not (config.get("data") or {}).get("type"):
        raise ConfigError(f"{source}: recalibrating BatchNorm needs the run's training data: no config in the "
                          "checkpoint or beside it (pass --config CFG)")
    model = model_from_state(state_dict, meta, config, source).to(device)
    if not has_batchnorm(model):
        raise ConfigError(f"{source}: {meta.get('arch')} has no BatchNorm layer to recalibrate")
    data = config["data"]
    train_set = build_dataset(data, "train", int(config.get("seed", 0)), uint8=True)
    val_set = build_dataset(data, "val", uint8=True)
    batch_size = settings.batch_size or int(data.get("batch_size", 64))
    top1, top5 = evaluate(model, val_set, batch_size, workers)
    start = time.perf_counter()
    done = recalibrate_bn(model, train_set, settings.samples, settings.seed, batch_size, workers)
    wall = time.perf_counter() - start
    after1, after5 = evaluate(model, val_set, batch_size, workers)
    record = {**done, "top1_before": top1, "top5_before": top5, "top1_after": after1, "top5_after": after5,
              "wall_s": wall}
    out = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return out, {**meta, "top1": after1, "top5": after5, "bn_recalibrate": record}


def publish_transform(samples: int, seed: int = 0, config_path: str | None = None, device: str = "cpu",
                      log=print):
    """For ``pretrain.publish.publish(transform=...)`` (``tools/publish_model.py --recalibrate-bn N``):
    recalibrate the weights being published on the run's training data; checked before any work."""
    settings = BNRecalibrate.from_dict(dict(samples=samples, seed=seed), where="--recalibrate-bn")
    explicit = read_config(config_path) if config_path else None

    def transform(state_dict: dict, meta: dict, ckpt: dict, path: Path) -> tuple[dict, dict]:
        config = explicit or (ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None)
        if config is None and (Path(path).parent / "config.py").is_file():
            config = read_config(Path(path).parent / "config.py")
        state_dict, meta = recalibrate_checkpoint(state_dict, meta, config, settings, str(path), device)
        r = meta["bn_recalibrate"]
        log(f"BatchNorm recalibrated on {r['samples']} training images (seed {r['seed']}, {r['batches']} batches): "
            f"top-1 {r['top1_before']:.2f}% -> {r['top1_after']:.2f}%, top-5 {r['top5_before']:.2f}% -> "
            f"{r['top5_after']:.2f}%")
        return state_dict, meta

    return transform
