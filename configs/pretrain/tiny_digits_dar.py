# Tiny CPU demo / test: Drop-and-Refresh on scikit-learn's digits. Warm-up W=1, interval I=1, keep p=0.6,
# refresh R=[4], 6 epochs: subsets of 100/100/60/36/100/60% of the data.
# Launch: python tools/train.py configs/pretrain/tiny_digits_dar.py   (add --dry-run to see the plan)
# Cost: 76% of tiny_digits_uniform.py in samples and FLOPs; about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='dar', warmup=1, interval=1, keep=0.6, refresh=[4])
