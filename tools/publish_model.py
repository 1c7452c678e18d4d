"""Publish a pre-trained backbone for transfer (and for sharing).

    python tools/publish_model.py work_dirs/r50_dar86 published/resnet50_dar86_in1k
    -> published/resnet50_dar86_in1k-<sha256[:8]>.pth  + an entry in published/metafile.yml

IN is a pre-training work dir, a checkpoint (``epoch_<n>.pth``), or ``backbone.pth``. Optimizer, scaler and
selection state are dropped; the timm-named weights and the ``meta`` block (architecture, method and its
parameters, relative cost, top-1/top-5, epochs, dataset, git revision, date) are kept. The file name ends in
the first 8 hex digits of the file's sha256, like OpenMMLab's ``publish_model.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first, not an installed copy's

from pretrain.publish import PublishError, publish  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("in_path", metavar="IN", help="pre-training work dir or checkpoint file")
    p.add_argument("out", metavar="OUT", help="output path without hash (e.g. published/r50_dar86)")
    p.add_argument("--index", help="model index to update (default: <OUT dir>/metafile.yml)")
    p.add_argument("--name", help="model name in the index (default: OUT's file name)")
    p.add_argument("--config", help="config to record in the index (default: the work dir's config.py)")
    p.add_argument("--weights-url", help="base URL for the index's Weights field (default: relative path)")
    p.add_argument("--recalibrate-bn", type=int, metavar="N", help="first recompute the BatchNorm statistics over N "
                   "training images of the run (torch's update_bn; the run's config gives the data; docs/pretrain.md)")
    p.add_argument("--bn-seed", type=int, default=0, help="seed of --recalibrate-bn's uniform sample (default 0)")
    return p


def fine_tuned_description(path: str) -> str | None:
    """What a fine-tuned (mmengine) checkpoint is, in words, or None for anything else: publishing takes
    pre-trained backbones, and such a file's meta lacks the architecture and method for a reason."""
    from pretrain.publish import resolve_input

    try:
        import torch

        ckpt = torch.load(resolve_input(path), map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - unreadable: publish's own message stands
        return None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        return None
    meta = ckpt.get("meta") or {}
    parts = list(dict.fromkeys(str(k).split(".", 1)[0] for k in ckpt["state_dict"]))
    if not (isinstance(meta, dict) and "cfg" in meta) and not ("backbone" in parts and len(parts) > 1):
        return None
    kind = ""
    try:  # the model's type from the config mmengine embeds (only on this error path: mmengine is heavy)
        from mmengine.config import Config

        kind = f"{Config.fromstring(meta['cfg'], file_format='.py').model.type} "
    except Exception:  # noqa: BLE001 - no usable config: the line just names no type
        pass
    at = f", iteration {meta['iter']}" if isinstance(meta.get("iter"), int) else ""
    return (f"{path} is a fine-tuned {kind}checkpoint (mmengine; the whole model: {', '.join(parts[:5])}{at}), "
            "not a pre-trained backbone: publish the pre-training work dir, checkpoint or backbone.pth it was "
            "fine-tuned from (tools/test.py evaluates fine-tuned checkpoints)")


def check_work_dir(in_path: str) -> None:
    """A work dir is published only when one run wrote it and that run has ended (PublishError)."""
    from pathlib import Path

    from dar_common.workdir import read_log, work_dir_holder
    from pretrain.publish import PublishError

    work = Path(in_path)
    if not work.is_dir():
        return
    holder = work_dir_holder(work)
    if holder is not None:
        raise PublishError(f"{work} is still being written by a running job (pid {holder.get('pid', '?')} on host "
                           f"{holder.get('host', '?')}): publish it once that run has finished")
    summaries = [r for r in read_log(work) or [] if r.get("type") == "summary"]
    if len(summaries) > 1:
        raise PublishError(f"{work / 'log.jsonl'} holds {len(summaries)} runs' summaries (runs that wrote into one "
                           "work dir at once, or a finished run resumed): its weights are not one run's; publish "
                           "from a work dir that one run wrote")


def main(args: argparse.Namespace) -> int:
    from pretrain.backbone_file import BackboneFileError
    from pretrain.bn_recalibrate import publish_transform
    from pretrain.data import DataError
    from pretrain.errors import ConfigError

    try:
        check_work_dir(args.in_path)
        transform = None if args.recalibrate_bn is None else publish_transform(args.recalibrate_bn, args.bn_seed, args.config)
        final = publish(args.in_path, args.out, index=args.index, name=args.name, config=args.config,
                        weights_url=args.weights_url, transform=transform)
    except (PublishError, BackboneFileError, ConfigError, DataError) as e:
        described = fine_tuned_description(args.in_path) if isinstance(e, PublishError) else None
        print(f"error: {described or e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write that failed (full disk, file-size limit): nothing half-written is left
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"published {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
