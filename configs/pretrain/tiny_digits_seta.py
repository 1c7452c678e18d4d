# Tiny CPU demo / test: SeTa, scale efficient training (Zhou et al., CVPR 2025) on scikit-learn's digits.
# Each epoch draws a random 90% of the data, clusters it by last training loss into 5 groups (1-D k-means,
# seeded) and trains a window of round(5 x 0.6) = 3 groups that slides from the easiest to the hardest;
# epoch 1 trains the whole draw, epoch 6 (> 0.875 x 6) anneals on a plain random 90%.
# Launch: python tools/train.py configs/pretrain/tiny_digits_seta.py   (add --dry-run to see the bound)
# Cost: depends on the losses -- at most 90% of tiny_digits_uniform.py in samples and FLOPs (no extra
# forward: SeTa reads the training losses; a seed-0 run: 57.6%); about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='seta', prune_ratio=0.1, num_group=5, window_scale=0.6, delta=0.875)
