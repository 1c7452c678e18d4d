# Equal-budget control for imagenet_r50_dar74_120e.py: a fixed random 73.9% of ImageNet, trained for all
# 120 epochs (DaP Table 2(f), "63% data" row, on ImageNet).
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_fixed74_120e.py 8
# Cost: 73.9% of imagenet_r50_uniform_120e.py.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='fixed_subset', match=dict(warmup=10, interval=2, keep=0.9, active=10, refresh=[30, 60, 90]))
