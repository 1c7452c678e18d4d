# td-hm_res50_tiny.py with the ResNet-101 of td-hm_res101_8xb64-210e_coco-256x192.py.
# Launch: python tools/train.py configs/transfer/td-hm_res101_tiny.py --backbone resnet101.pth
# Cost: not measured; ResNet-101 has ~1.9x the FLOPs of ResNet-50 (td-hm_res50_tiny.py: 42 s CPU time).
_base_ = ['./td-hm_res50_tiny.py']

backbone_checkpoint = 'checkpoints/resnet101_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint=backbone_checkpoint)))
