# ImageNet ResNet-50, Drop-and-Refresh at 86% cost: W=10, I=2, p=0.95, active 10 epochs, refresh at
# 30/60/90 (the LR steps), 120 epochs -- the DaP paper's "86% computation" column of Table 7 (p=0.95).
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_dar86_120e.py 8
# Cost: 86.0% of imagenet_r50_uniform_120e.py in trained samples and FLOPs (check: --dry-run).
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='dar', warmup=10, interval=2, keep=0.95, active=10, refresh=[30, 60, 90])
