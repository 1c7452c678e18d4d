# ImageNet ResNet-50, fast online minibatch selection (thesis ch. 4): per GPU a uniform pool of b̄=64 is
# scored at 96 px without changing model state, and b=32 are trained, drawn with probability ∝ rank
# (beta=1); uniform for the first 10k steps and the last 10% of steps. Same number of steps as
# imagenet_r50_uniform_120e.py (the thesis compares accuracy per step; it trains 90 epochs with a
# cosine schedule and reaches the baseline in 1.3-1.5x fewer steps -- to spend less, shorten:
# --cfg-options schedule.epochs=90 or schedule.sched=cosine).
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_online_120e.py 8
# Cost: 100% of the uniform run's trained samples; about 111% of its FLOPs (scoring: (64/32)(1/3)(96/224)^2
# = +12% on the selecting steps); plus the loading of the pools.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='online', pool_size=64, score_resolution=96, beta=1.0, warmup_steps=10000,
              cooldown_fraction=0.1)
