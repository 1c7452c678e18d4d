# Tiny CPU demo / test of an equal-budget control: uniform training with the schedule shortened to
# tiny_digits_dar.py's relative cost (round(6 x 0.76) = 5 epochs; LR milestones scaled alike).
# Launch: python tools/train.py configs/pretrain/tiny_digits_shortened.py
# Cost: 5/6 = 83% of tiny_digits_uniform.py (whole epochs); about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='shortened', match=dict(warmup=1, interval=1, keep=0.6, refresh=[4]))
