# ImageNet ResNet-50, KAKURENBO (Nguyen et al., NeurIPS 2023: up to 22% less training time at <= 0.4% top-1
# on ImageNet ResNet-50, F = 0.3) on the DaR papers' 120-epoch step recipe: after 5 warm-up epochs, each
# epoch hides, among the lowest-loss F_e x N samples, those predicted correctly with confidence >= 0.7,
# refreshes the hidden ones with a forward pass after the epoch and scales the LR by 1/(1-F_e). F_e steps
# x1/0.8/0.6/0.4 at 1/3, 2/3, 8/9 of training (the official 90-epoch script's epochs 30/60/80; here
# 40/80/107).
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_kakurenbo_120e.py 8
# Cost: depends on the losses -- at least 77.9% of imagenet_r50_uniform_120e.py in samples and ~85% in
# FLOPs with the refresh passes (--dry-run bounds); the paper hides fewer than F, so expect ~85-90%.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='kakurenbo', max_fraction=0.3, tau=0.7, warmup_epochs=5)
