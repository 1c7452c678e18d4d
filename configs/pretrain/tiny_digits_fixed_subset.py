# Tiny CPU demo / test of an equal-budget control: one random subset, as large as tiny_digits_dar.py's
# relative cost (76% of the data), trained every epoch.
# Launch: python tools/train.py configs/pretrain/tiny_digits_fixed_subset.py
# Cost: 76% of tiny_digits_uniform.py; about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='fixed_subset', match=dict(warmup=1, interval=1, keep=0.6, refresh=[4]))
