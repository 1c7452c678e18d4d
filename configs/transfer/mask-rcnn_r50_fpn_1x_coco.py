# Mask R-CNN R50-FPN, 1x schedule, COCO 2017 instances, with OUR pre-trained ResNet-50 (papers' "Mask R-CNN").
# Reproduces: mmdet 3.3 `mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py`, upstream 38.2 box AP / 34.7 mask AP with
#   torchvision's ImageNet ResNet-50. Every hyper-parameter is upstream's; the only change is the backbone
#   weights (`DarResNet` = mmdet's ResNet whose Pretrained checkpoint loads through transfer.mm.checkpoint).
# Launch (8 GPUs x 2 images = batch 16, lr 0.02):
#   tools/dist_train.sh configs/transfer/mask-rcnn_r50_fpn_1x_coco.py 8 --backbone BACKBONE.pth
#   python tools/test.py configs/transfer/mask-rcnn_r50_fpn_1x_coco.py work_dirs/mask-rcnn_r50_fpn_1x_coco/epoch_12.pth
# Cost: 12 epochs x 118k images = ~88k iterations; upstream: 4.4 GB/GPU, ~0.25 s/iter on 8 V100 (~6-7 h).
# Data: data/coco/{annotations/instances_{train,val}2017.json, train2017/, val2017/}.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['transfer.mm.mmdet'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/resnet50_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
model = dict(
    backbone=dict(type='DarResNet', init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint)))
