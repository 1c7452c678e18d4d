# CIFAR-10, the DaP paper's DaR baseline: W=40, I=10, p=0.9, no active limit, refresh at 150, 300 epochs,
# LR 0.1 (batch 128) divided by 10 at 150 and 225 (Table 2, "baseline": 63% computation, 94.63% top-1
# with ResNet-110). ResNet-110 is not a timm model: this uses timm's resnet18 at 32 px, so accuracy is
# not the paper's; the schedule and its cost are. Augmentation: random-resized crop (35-100%) + flip.
# Expects torchvision's on-disk CIFAR-10 (data/cifar10/cifar-10-batches-py); never downloads.
# Launch (1 GPU): python tools/train.py configs/pretrain/cifar10_dar63_300e.py
# Cost: 62.7% (~63%) of uniform sampling for 300 epochs (check: --dry-run); about 2-3 GPU-hours.
model = dict(arch='resnet18')
data = dict(type='cifar10', root='data/cifar10', img_size=32, batch_size=128, num_workers=4,
            scale=(0.35, 1.0), hflip=0.5, crop_pct=1.0)
optim = dict(lr=0.1, lr_batch=128, momentum=0.9, weight_decay=1e-4)
schedule = dict(epochs=300, sched='step', milestones=[150, 225], decay_rate=0.1, warmup_epochs=0)
runtime = dict(amp='bf16', channels_last=True, checkpoint_interval=10, eval_interval=5)
method = dict(type='dar', warmup=40, interval=10, keep=0.9, refresh=[150])
seed = 0
