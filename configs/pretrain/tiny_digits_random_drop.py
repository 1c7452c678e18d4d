# Tiny CPU demo / test: the random-drop control on scikit-learn's digits -- each epoch trains a fresh
# uniformly random 80% of the data (bench/accuracy.py sets method.fractions to a loss-driven method's
# achieved per-epoch cost, so the control spends the same FLOPs epoch by epoch without looking at losses).
# Launch: python tools/train.py configs/pretrain/tiny_digits_random_drop.py   (add --dry-run to see the plan)
# Cost: 80% of tiny_digits_uniform.py in samples and FLOPs; about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='random_drop', budget=0.8)
