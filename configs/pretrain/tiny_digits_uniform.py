# Tiny CPU demo / test: uniform training (the 100% baseline) on scikit-learn's digits.
# Launch: python tools/train.py configs/pretrain/tiny_digits_uniform.py
# Cost: 6 epochs x 1347 samples, about 10-30 s on one CPU core; reaches well above 10% (chance) top-1.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='uniform')
