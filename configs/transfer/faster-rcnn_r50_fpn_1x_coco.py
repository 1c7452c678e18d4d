# Faster R-CNN R50-FPN, 1x schedule, COCO 2017 detection, with OUR pre-trained ResNet-50 (papers' "FPN").
# Reproduces: mmdet 3.3 `faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py`, upstream 37.4 box AP with torchvision's
#   ImageNet ResNet-50. Every hyper-parameter is upstream's; the only change is the backbone weights:
#   `DarResNet` is mmdet's own ResNet (frozen_stages=1, norm_eval, style='pytorch') whose Pretrained
#   checkpoint loads through transfer.mm.checkpoint (all keys counted; missing/mismatched keys fail).
# Launch (8 GPUs x 2 images = batch 16, lr 0.02):
#   tools/dist_train.sh configs/transfer/faster-rcnn_r50_fpn_1x_coco.py 8 --backbone BACKBONE.pth
#   python tools/test.py configs/transfer/faster-rcnn_r50_fpn_1x_coco.py work_dirs/faster-rcnn_r50_fpn_1x_coco/epoch_12.pth
# Cost: 12 epochs x 118k images = ~88k iterations; upstream: 4.0 GB/GPU, ~0.2 s/iter on 8 V100 (~5-6 h).
# Data: data/coco/{annotations/instances_{train,val}2017.json, train2017/, val2017/}.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['transfer.mm.mmdet'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/resnet50_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
model = dict(
    backbone=dict(type='DarResNet', init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint)))
