# Tiny CPU smoke run of pspnet_r50b-d8_4xb2-80k_cityscapes-769x769.py: same model (plain-stem DarResNet-50
# dilated to stride 8, PSP head + FCN auxiliary head) with BN instead of SyncBN, on the synthetic Cityscapes
# that `python tools/make_tiny_data.py data/tiny` writes (24 train / 8 val scenes of 256x128,
# labelTrainIds), with 128x128 training crops and whole-image inference (upstream slides 769 crops over
# 2049x1025 images; a 256x128 image needs no sliding). Proves the pipeline end to end (our weights ->
# training -> mmseg IoU); the numbers mean nothing beyond "it learns and evaluates".
# Launch: python tools/train.py configs/transfer/pspnet_r50b-d8_tiny.py --backbone resnet50.pth
#           [--data-root DIR/cityscapes] (default data/tiny/cityscapes; make it with tools/make_tiny_data.py DIR)
# Cost: 4 iterations of batch 2, then 8 val scenes. Measured on a shared 2-core CPU: 55 s CPU time for
#   train+val (87 s wall at load 6), 28 s CPU for tools/test.py.
# ResNet-18: pspnet_r18b-d8_tiny.py (depth 18, heads on 512/256 channels as upstream's r18b-d8).
_base_ = ['./pspnet_r50b-d8_4xb2-80k_cityscapes-769x769.py']

data_root = 'data/tiny/cityscapes/'
crop_size = (128, 128)
scale = (256, 128)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg),
    test_cfg=dict(_delete_=True, mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# 4 iterations with upstream's SGD 0.01 and poly decay over them (the dilated stride-8 ResNet-50 and
# the PSP head's 4096->512 3x3 conv make one 128x128 crop cost ~20 GFLOPs forward).
train_cfg = dict(max_iters=4, val_interval=4)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=4, by_epoch=False)]
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(interval=4))
