# pspnet_r50b-d8_tiny.py with a plain-stem ResNet-18 (the small backbone the demo pre-trains: timm
# `resnet18`); head widths as upstream's pspnet_r18b-d8 (PSP 512 -> 128 channels, auxiliary 256 -> 64).
# Launch: python tools/train.py configs/transfer/pspnet_r18b-d8_tiny.py --backbone resnet18_backbone.pth
# Cost (shared 2-core CPU): 25 s CPU time for train+val (51 s wall at load 7), 16 s for tools/test.py.
_base_ = ['./pspnet_r50b-d8_tiny.py']

backbone_checkpoint = 'checkpoints/resnet18_backbone.pth'  # replace with --backbone PATH
model = dict(
    backbone=dict(depth=18, init_cfg=dict(checkpoint=backbone_checkpoint)),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
