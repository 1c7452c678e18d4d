# mask-rcnn_r50_fpn_tiny.py with a ResNet-18 (the small backbone the demo pre-trains: timm `resnet18`), at
# the demo's transfer budget (as faster-rcnn_r18_fpn_tiny.py, which says why):
#   - FPN, RPN, RoI box head (fc 256) and mask head 64 channels wide instead of 256;
#   - the whole backbone trains, BN in train mode (frozen_stages=-1, norm_eval=False);
#   - all 200 training images at batch 4, 60 iterations of AdamW (lr 1e-3, weight decay 0.05) after a
#     15-iteration warm-up. SGD at lr 0.02 diverged (NaN losses from iteration ~35, no detection: AP 0)
#     from the synthetic-shapes uniform ResNet-18; with gradient clipping (max norm 10) it reached mask
#     AP50 58.1, with AdamW box AP50 83.9 / mask AP50 95.6 (AP 34.8 / 50.1; seed 0, idle, 30 s wall).
# Launch: python tools/train.py configs/transfer/mask-rcnn_r18_fpn_tiny.py --backbone resnet18_backbone.pth
# Cost (2-core CPU, 1 thread, measured at load ~20, so upper bounds): 0.31 s CPU per iteration; train+test
#   ~28 s CPU.
_base_ = ['./mask-rcnn_r50_fpn_tiny.py']

backbone_checkpoint = 'checkpoints/resnet18_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
width = 64
model = dict(
    backbone=dict(depth=18, init_cfg=dict(checkpoint=backbone_checkpoint), frozen_stages=-1, norm_eval=False),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=width),
                  bbox_head=dict(in_channels=width, fc_out_channels=256),
                  mask_roi_extractor=dict(out_channels=width),
                  mask_head=dict(in_channels=width, conv_out_channels=width)),
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
