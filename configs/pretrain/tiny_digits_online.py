# Tiny CPU demo / test: fast online minibatch selection on scikit-learn's digits. Each step loads a pool
# of b̄=64, scores it at 16 px (training at 32 px) without touching the model's state, and trains on
# b=32 drawn with probability ∝ rank (beta=1). Uniform for the first 20 steps and the last 10%.
# Launch: python tools/train.py configs/pretrain/tiny_digits_online.py
# Cost: as many steps as tiny_digits_uniform.py (6 x 43) plus the scoring forwards: about 114% in
# FLOPs (1 + (64/32)(1/3)(16/32)^2 on the selecting steps); about 15-25 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='online', pool_size=64, score_resolution=16, beta=1.0, warmup_steps=20, cooldown_fraction=0.1)
