# Tiny CPU demo / test: Selective Backprop in Composer's form on scikit-learn's digits. From 50% to 90% of
# the 6 x 43 steps, every other batch is scored at 16 px (scale_factor 0.5 of 32; no gradient, model
# state untouched) and 16 of its 32 samples are trained, drawn with probability ∝ ((rank + 0.5)/32)^1
# over ascending loss; the other steps train the whole batch.
# Launch: python tools/train.py configs/pretrain/tiny_digits_selective_backprop.py   (add --dry-run)
# Cost: 51 of 258 steps select: 89.9% of tiny_digits_uniform.py's samples and 91.6% of its FLOPs with
# the scoring forwards (exact figures: --dry-run); about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='selective_backprop', start=0.5, end=0.9, keep=0.5, scale_factor=0.5, interrupt=2)
