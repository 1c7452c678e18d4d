# ImageNet ResNet-50, InfoBatch (Qin et al., ICLR 2024: r=0.5, delta=0.875) on timm's A3 procedure
# (imagenet_r50_rsb_a3.py: LAMB, BCE, Mixup/CutMix, RandAugment, 100 epochs at 160 px); InfoBatch's paper
# trains its ResNet-50 with a timm recipe too. Scores are each position's BCE against its mixed target, the
# 1/(1-r) weight multiplies the loss of the position of a kept well-learned sample (docs/selection.md).
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_rsb_a3_infobatch.py 8
# Cost: depends on the losses -- at least 56.5% of imagenet_r50_rsb_a3.py in samples and FLOPs (the --dry-run
# bound: all but one sample below the mean); log.jsonl records the achieved kept_fraction per epoch.
_base_ = ['./imagenet_r50_rsb_a3.py']
method = dict(_delete_=True, type='infobatch', prune_ratio=0.5, delta=0.875)
