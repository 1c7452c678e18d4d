# faster-rcnn_r50_fpn_tiny.py with a ResNet-18 (the small backbone the demo pre-trains: timm `resnet18`), at
# the demo's transfer budget: long enough that the box AP measures something (issue 12), short enough for
# 30 fine-tunings in one CPU demo.
#   - FPN, RPN and RoI head 64 channels wide (fc 256) instead of 256 (fc 1024): at 128 px the 256-wide neck
#     and heads cost ~3 GFLOPs per image, 5x the ResNet-18 itself;
#   - the whole backbone trains, BN in train mode (frozen_stages=-1, norm_eval=False): the pre-training
#     images (digits) are nothing like these, so frozen statistics and stem hurt (measured below);
#   - all 200 training images of the tiny data at batch 4, 60 iterations of AdamW (lr 1e-3, weight decay
#     0.05) after a 15-iteration warm-up: upstream's SGD (0.02 here) learns too little in 60 steps.
# Launch: python tools/train.py configs/transfer/faster-rcnn_r18_fpn_tiny.py --backbone resnet18_backbone.pth
# Cost (2-core CPU, 1 thread, measured at load ~20, so upper bounds): 0.27 s CPU per iteration; train+test
#   ~25 s CPU. Measured at 100 iterations (seed 0): box AP50 49.0 from the digits-uniform ResNet-18, 58.5
#   from scratch (AP 17.3 both); with frozen stem + norm_eval: 41.4 and 76.7. At these 60 iterations from the
#   synthetic-shapes uniform ResNet-18 (the demo's pre-training data): box AP50 54.6 (AP 15.0), 31 s CPU for
#   train + val at load 22 (1 thread). With AdamW instead of SGD 0.02 (same backbone, seed 0, idle machine):
#   box AP50 89.6 (AP 34.7) against 66.6 (AP 17.4), 25 s wall for train + test.
_base_ = ['./faster-rcnn_r50_fpn_tiny.py']

backbone_checkpoint = 'checkpoints/resnet18_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
width = 64
model = dict(
    backbone=dict(depth=18, init_cfg=dict(checkpoint=backbone_checkpoint), frozen_stages=-1, norm_eval=False),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=width),
                  bbox_head=dict(in_channels=width, fc_out_channels=256)),
    # a tiny image holds 1-3 objects: fewer proposals, sampled RoIs and detections
    train_cfg=dict(rpn_proposal=dict(nms_pre=300, max_per_img=100), rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(max_per_img=10)))

train_dataloader = dict(batch_size=4, dataset=dict(indices=None))
val_dataloader = dict(batch_size=8)
test_dataloader = val_dataloader
iters = 60
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=15)]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=iters))
log_processor = dict(by_epoch=False)
