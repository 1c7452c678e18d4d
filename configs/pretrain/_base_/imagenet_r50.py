# Shared settings of the ImageNet ResNet-50 configs (imagenet_r50_*.py), the DaR / DaP papers' recipe:
# SGD momentum 0.9, weight decay 1e-4, LR 0.1 per 256 images (scaled linearly with the global batch),
# divided by 10 every 30 epochs, 120 epochs; random-resized crop (8-100%) + flip at 224 px, single
# 224 centre crop of the 256-resized image for evaluation. Batch 32 per GPU: 8 GPUs = the papers' 256.
# Expects ImageNet-1k as data/imagenet/{train,val}/<wnid>/*.JPEG (val sorted into class folders).
# Other paper backbones by a one-line override: --cfg-options model.arch=densenet121
# (resnet18/50/101/152, densenet121/169, mobilenetv1, or any timm model name).
model = dict(arch='resnet50')
data = dict(
    type='imagefolder', root='data/imagenet', train_dir='train', val_dir='val',
    num_samples=1281167,  # for --dry-run only; the run counts the files
    img_size=224, batch_size=32, num_workers=8,
    scale=(0.08, 1.0), hflip=0.5, crop_pct=0.875,
    verify='header')  # open every image header before training (a few minutes on ImageNet)
optim = dict(lr=0.1, lr_batch=256, momentum=0.9, weight_decay=1e-4)
schedule = dict(epochs=120, sched='step', milestones=[30, 60, 90], decay_rate=0.1, warmup_epochs=0)
runtime = dict(amp='bf16', channels_last=True, compile=False, checkpoint_interval=1, eval_interval=1)
seed = 0
