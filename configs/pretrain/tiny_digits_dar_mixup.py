# Tiny CPU demo / test: Drop-and-Refresh (tiny_digits_dar.py's W=1, I=1, p=0.6, R=[4]) under the parts of
# timm's "ResNet strikes back" recipes (arXiv 2110.00476) that change what a selection method sees: Mixup
# (alpha 0.2) / CutMix (alpha 1.0, switch 0.5) on every batch, binary cross-entropy with target threshold
# 0.2, LAMB with cosine LR and one warm-up epoch, RandAugment rand-m6-mstd0.5-inc1, an EMA of the weights
# (decay 0.9, the published backbone), and 2-step gradient accumulation (an update every 2 batches).
# DaR records each position's BCE against its mixed target (docs/selection.md, "Losses under mixing").
# Launch: python tools/train.py configs/pretrain/tiny_digits_dar_mixup.py   (add --dry-run to see the plan)
# Cost: 76% of tiny_digits_uniform.py in samples and FLOPs, as tiny_digits_dar.py; about 20-40 s on one CPU
# core (RandAugment on 32-px images and two evaluations per epoch, raw and EMA weights).
_base_ = ['./tiny_digits_dar.py']
data = dict(auto_augment='rand-m6-mstd0.5-inc1')
optim = dict(opt='lamb', lr=0.04, lr_batch=256, weight_decay=0.02, filter_bias_and_bn=True, accum_steps=2)
schedule = dict(sched='cosine', milestones=[], warmup_epochs=1, warmup_lr=1e-4, min_lr=1e-5)
mixup = dict(mixup_alpha=0.2, cutmix_alpha=1.0, switch_prob=0.5)
loss = dict(type='bce', bce_target_thresh=0.2)
ema = dict(decay=0.9, publish='ema')
