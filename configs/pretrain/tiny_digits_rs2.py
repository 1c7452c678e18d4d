# Tiny CPU demo / test: RS2 without replacement (Okanovic et al., ICLR 2024) on scikit-learn's digits --
# each epoch trains a fresh random half of the data, the next half of one random permutation per two
# epochs, so every digit is trained once every two epochs (1347 is odd: the second half takes one digit
# of the first again);
# bench/accuracy.py sets method.fractions to a loss-driven method's achieved per-epoch cost (the
# strongest random control at equal FLOPs).
# Launch: python tools/train.py configs/pretrain/tiny_digits_rs2.py   (add --dry-run to see the plan)
# Cost: 50% of tiny_digits_uniform.py in samples and FLOPs (674 of 1347 per epoch); about 15 s of one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='rs2', budget=0.5)
