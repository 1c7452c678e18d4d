# Tiny CPU demo / test of an equal-budget control: DaR's schedule (same W, I, p, R as tiny_digits_dar.py)
# with uniformly random instead of loss-ranked dropping.
# Launch: python tools/train.py configs/pretrain/tiny_digits_dar_random.py
# Cost: 76% of tiny_digits_uniform.py, like tiny_digits_dar.py; about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='dar_random', warmup=1, interval=1, keep=0.6, refresh=[4])
