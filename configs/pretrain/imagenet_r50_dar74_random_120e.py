# Equal-budget control for imagenet_r50_dar74_120e.py: the same DaR schedule (W=10, I=2, p=0.9, active
# 10, refresh 30/60/90) dropping uniformly random samples instead of the easiest (DaP Table 2(f),
# "Random" row, on ImageNet).
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_dar74_random_120e.py 8
# Cost: 73.9% of imagenet_r50_uniform_120e.py, like DaR 74%.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='dar_random', warmup=10, interval=2, keep=0.9, active=10, refresh=[30, 60, 90])
