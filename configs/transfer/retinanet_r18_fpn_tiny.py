# retinanet_r50_fpn_tiny.py with a ResNet-18 (the small backbone the demo pre-trains: timm `resnet18`).
# Launch: python tools/train.py configs/transfer/retinanet_r18_fpn_tiny.py --backbone resnet18_backbone.pth
# Cost: see docs/transfer.md (measured with the other ResNet-18 tiny configs).
_base_ = ['./retinanet_r50_fpn_tiny.py']

backbone_checkpoint = 'checkpoints/resnet18_backbone.pth'  # replace with --backbone PATH
model = dict(
    backbone=dict(depth=18, init_cfg=dict(checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 512]))
