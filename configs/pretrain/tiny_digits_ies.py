# Tiny CPU demo / test: IES, instance-dependent early stopping (Yuan et al., ICLR 2025) on scikit-learn's
# digits. A sample leaves training when the second-order difference of its per-epoch loss stays below the
# threshold (here one difference, m = k = 1, so samples can leave from epoch 5 of 6; the official
# defaults m = 3, k = 1 judge a sample after 6 losses); a left sample is still forwarded after each epoch
# (counted in FLOPs) and comes back when its loss moves again.
# Launch: python tools/train.py configs/pretrain/tiny_digits_ies.py   (add --dry-run to see the bound)
# Cost: depends on the losses -- at most 100% of tiny_digits_uniform.py (epochs 1-4 train all data; a
# seed-0 run: 92.1% of the samples, 93.2% of the FLOPs with the forwards); about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='ies', threshold=0.02, moving_average=1, window=1)
