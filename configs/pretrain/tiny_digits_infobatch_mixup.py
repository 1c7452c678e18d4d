# Tiny CPU demo / test: InfoBatch (tiny_digits_infobatch.py: r=0.5, delta=0.8) under the parts of timm's
# "ResNet strikes back" recipes (arXiv 2110.00476) that change what a selection method sees: Mixup
# (alpha 0.2) / CutMix (alpha 1.0, switch 0.5) on every batch, binary cross-entropy with target threshold
# 0.2, LAMB with cosine LR and one warm-up epoch, RandAugment rand-m6-mstd0.5-inc1, an EMA of the weights
# (decay 0.9, the published backbone), and 2-step gradient accumulation (an update every 2 batches).
# InfoBatch scores each position's BCE against its mixed target and weights that position's loss by
# 1/(1-r) when the sample at it is a kept well-learned one (docs/selection.md, "Losses under mixing").
# Launch: python tools/train.py configs/pretrain/tiny_digits_infobatch_mixup.py   (--dry-run: the bound)
# Cost: depends on the losses -- at least 66.7% of tiny_digits_uniform.py in samples and FLOPs (the
# dry-run's bound); about 20-40 s on one CPU core.
_base_ = ['./tiny_digits_infobatch.py']
data = dict(auto_augment='rand-m6-mstd0.5-inc1')
optim = dict(opt='lamb', lr=0.04, lr_batch=256, weight_decay=0.02, filter_bias_and_bn=True, accum_steps=2)
schedule = dict(sched='cosine', milestones=[], warmup_epochs=1, warmup_lr=1e-4, min_lr=1e-5)
mixup = dict(mixup_alpha=0.2, cutmix_alpha=1.0, switch_prob=0.5)
loss = dict(type='bce', bce_target_thresh=0.2)
ema = dict(decay=0.9, publish='ema')
