# td-hm_res50_tiny.py with a ResNet-18 (the small backbone the demo pre-trains: timm `resnet18`), at the
# demo's transfer budget: 64x96 input (heatmaps 16x24, sigma 1.5), the SimpleBaseline head's three deconvs
# 64 channels wide instead of 256 (at 16x24 they cost more than the ResNet-18), batch 16, 100 iterations
# (~7 epochs of the ~240 training persons), Adam 2e-3 (upstream's 5e-4 is for 210 epochs) after a
# 10-iteration warm-up; flip test on the 50 val images' person boxes.
# Launch: python tools/train.py configs/transfer/td-hm_res18_tiny.py --backbone resnet18_backbone.pth
# Cost (2-core CPU, 1 thread, at load ~20, so upper bounds): train+test ~30 s CPU. Measured with the
#   256-wide head, sigma 1, Adam 5e-4 from scratch: keypoint AP 0.03 / 2.8 / 4.7 / 6.0 after 20 / 40 / 60
#   / 100 iterations (before the mannequins got their fuller bodies): this recipe is the slowest to start.
#   At these settings, 60 iterations from the synthetic-shapes uniform ResNet-18: keypoint AP 13.6, 37 s CPU
#   for train + val at load 20 (1 thread) -- below issue 12's target of 20; on an idle machine 15.9 at 60
#   and 34.0 at 100 iterations (Adam 5e-3: 5.9 at 60); at 80 iterations, seeds 0 and 1, 17.7 +- 7.0.
_base_ = ['./td-hm_res50_tiny.py']

backbone_checkpoint = 'checkpoints/resnet18_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
codec = dict(type='MSRAHeatmap', input_size=(64, 96), heatmap_size=(16, 24), sigma=1.5)
model = dict(backbone=dict(depth=18, init_cfg=dict(checkpoint=backbone_checkpoint)),
             head=dict(in_channels=512, deconv_out_channels=(64, 64, 64), decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=16, dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
iters = 100
train_cfg = dict(_delete_=True, by_epoch=False, max_iters=iters, val_interval=iters)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [dict(type='LinearLR', begin=0, end=10, start_factor=0.1, by_epoch=False)]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=iters))
log_processor = dict(by_epoch=False)
