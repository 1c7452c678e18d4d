# Tiny CPU demo / test: KAKURENBO (Nguyen et al., NeurIPS 2023) on scikit-learn's digits. After a 1-epoch
# warm-up, each epoch hides, among the F_e x N lowest-loss samples, those predicted correctly with
# confidence >= 0.7 at their last forward; a forward-only pass refreshes the hidden ones after the epoch,
# and the epoch's LR is multiplied by 1/(1-F_e). F = 0.3 steps down x0.8/0.6/0.4 at 1/3, 2/3 and 8/9 of
# training (the paper's ImageNet schedule): F_e = 0 / 0.3 / 0.24 / 0.24 / 0.18 / 0.12 for epochs 1-6.
# Launch: python tools/train.py configs/pretrain/tiny_digits_kakurenbo.py   (add --dry-run to see the bound)
# Cost: depends on the losses -- at least 82% of tiny_digits_uniform.py in samples, 88% in FLOPs with the
# refresh passes (the dry-run's bounds); about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='kakurenbo', max_fraction=0.3, tau=0.7, warmup_epochs=1)
