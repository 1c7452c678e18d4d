# ImageNet ResNet-50, IES -- instance-dependent early stopping (Yuan et al., ICLR 2025: 10-50% fewer
# backpropagated samples at equal or slightly better test accuracy; official code and defaults for CIFAR:
# threshold 1e-3, moving average over m = 3 epochs, k = 1) on the DaR papers' 120-epoch step recipe. A sample
# leaves training once the averaged |second difference| of its per-epoch loss is below 1e-3 (judged from its
# 6th loss on: epochs 7-120 can exclude); each excluded sample is forwarded after the epoch (eval mode,
# counted in FLOPs) and comes back when its loss moves again. The official code publishes no ImageNet
# threshold (it doubles 1e-3 for CIFAR-100's 100 classes): tune with --cfg-options method.threshold=...
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_ies_120e.py 8
# Cost: depends on the losses -- at most 100% of imagenet_r50_uniform_120e.py; --dry-run prints the floor
# (every sample excluded as early as allowed); the achieved figures are in log.jsonl and its summary.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='ies', threshold=1e-3, moving_average=3, window=1)
