# ImageNet ResNet-50, timm's "ResNet strikes back" procedure A3 (Wightman, Touvron & Jegou, arXiv 2110.00476,
# Table 1, A3: 78.1% top-1 at 224 px): 100 epochs at 160 px, tested at 224 px with crop ratio 0.95 (bicubic);
# LAMB, LR 8e-3 at a global batch of 2048 (8 GPUs x 256), weight decay 0.02 (not on biases and norm
# layers: timm's filter), cosine schedule with 5 warm-up epochs from 1e-4 down to 1e-6, stepped per epoch as
# timm's train.py does; binary cross-entropy with targets thresholded at 0.2; Mixup 0.1 / CutMix 1.0
# (switch 0.5), no label smoothing; RandAugment 6/0.5 (timm's rand-m6-mstd0.5-inc1) + random-resized crop +
# flip, random interpolation; no stochastic depth, EMA, random erasing or repeated augmentation.
# tests/test_pretrain/test_recipes.py resolves this file into what timm's train.py builds for these A3
# arguments (optimizer, LR per epoch, transforms, Mixup, loss) and fails on any difference.
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_rsb_a3.py 8
# Cost: 100 epochs of the 1.28M images at 160 px = (160/224)^2 = 51% of a 224-px epoch's FLOPs each:
# 42.5% of the training FLOPs of imagenet_r50_uniform_120e.py (relative cost 100% of its own 100 epochs).
_base_ = ['./_base_/imagenet_r50.py']
model = dict(arch='resnet50', kwargs=dict())  # A3: no stochastic depth (A1/A2: kwargs=dict(drop_path_rate=0.05))
data = dict(
    img_size=160, test_size=224, crop_pct=0.95, batch_size=256,
    scale=(0.08, 1.0), hflip=0.5, interpolation='bicubic', train_interpolation='random',
    auto_augment='rand-m6-mstd0.5-inc1')
optim = dict(opt='lamb', lr=8e-3, lr_batch=2048, weight_decay=0.02, filter_bias_and_bn=True, label_smoothing=0.0)
schedule = dict(epochs=100, sched='cosine', milestones=[], warmup_epochs=5, warmup_lr=1e-4, min_lr=1e-6,
                step_on_epochs=True)
mixup = dict(mixup_alpha=0.1, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch')
loss = dict(type='bce', bce_target_thresh=0.2)
method = dict(type='uniform')
