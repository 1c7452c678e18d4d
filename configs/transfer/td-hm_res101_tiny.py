# td-hm_res50_tiny.py with the ResNet-101 of td-hm_res101_8xb64-210e_coco-256x192.py.
# Launch: python tools/train.py configs/transfer/td-hm_res101_tiny.py --backbone resnet101.pth
# Cost: ~1.7x td-hm_res50_tiny.py.
_base_ = ['./td-hm_res50_tiny.py']

backbone_checkpoint = 'checkpoints/resnet101_backbone.pth'  # replace with --backbone PATH
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint=backbone_checkpoint)))
