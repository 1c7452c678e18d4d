# Equal-budget control for imagenet_r50_dar74_120e.py: uniform training with the schedule shortened to
# DaR 74%'s cost, round(120 x 0.739) = 89 epochs, LR milestones scaled alike (22.25/44.5/66.75)
# (DaP Table 2(f), "All data 63%" row, on ImageNet).
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_shortened74.py 8
# Cost: 89/120 = 74.2% of imagenet_r50_uniform_120e.py.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='shortened', match=dict(warmup=10, interval=2, keep=0.9, active=10, refresh=[30, 60, 90]))
