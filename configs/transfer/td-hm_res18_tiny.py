# td-hm_res50_tiny.py with a ResNet-18 (the small backbone the demo pre-trains: timm `resnet18`).
# Launch: python tools/train.py configs/transfer/td-hm_res18_tiny.py --backbone resnet18_backbone.pth
# Cost (shared 2-core CPU): 23 s CPU time for train+val (47 s wall at load 7), 10 s for tools/test.py.
_base_ = ['./td-hm_res50_tiny.py']

backbone_checkpoint = 'checkpoints/resnet18_backbone.pth'  # replace with --backbone PATH
model = dict(backbone=dict(depth=18, init_cfg=dict(checkpoint=backbone_checkpoint)), head=dict(in_channels=512))
