# ImageNet ResNet-50, Drop-and-Refresh on timm's A3 procedure (imagenet_r50_rsb_a3.py: LAMB, BCE, Mixup/CutMix,
# RandAugment, 100 epochs at 160 px): the DaR papers' ImageNet setting W=10, I=2, p=0.9, alpha=10 with the
# refreshes at the same fractions of training as their 120-epoch R=[30, 60, 90] (here [25, 50, 75]). DaR ranks
# by each position's BCE against its mixed target (docs/selection.md, "Losses under mixing").
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_rsb_a3_dar.py 8
# Cost (--dry-run): 75.6% of imagenet_r50_rsb_a3.py in samples and FLOPs (the last 17 epochs train 65.6%).
_base_ = ['./imagenet_r50_rsb_a3.py']
method = dict(_delete_=True, type='dar', warmup=10, interval=2, keep=0.9, active=10, refresh=[25, 50, 75])
