# Tiny CPU smoke run of mask-rcnn_r50_fpn_1x_coco.py: same model (DarResNet-50 + FPN + RPN + box/mask heads,
# BN), on the synthetic 3-class COCO that `python tools/make_tiny_data.py data/tiny` writes (24 train / 8
# val images of ~256x192, polygon masks). Proves the pipeline end to end (our weights -> training ->
# pycocotools bbox and segm AP); the numbers mean nothing beyond "it learns and evaluates".
# Built like upstream's recipe from mmdet's model base, with the tiny data and schedule of _base_/ in place
# of COCO's and the 1x schedule; a test checks that the model is mask-rcnn_r50_fpn_1x_coco.py's but for
# the settings below.
# Launch: python tools/train.py configs/transfer/mask-rcnn_r50_fpn_tiny.py --backbone resnet50.pth
#           [--data-root DIR/coco] (default data/tiny/coco; make it with tools/make_tiny_data.py DIR)
# Cost: 6 iterations of batch 2 at 192 px, then 8 val images. Measured on a shared 2-core CPU: 72 s CPU
#   time for train+val (147 s wall at load 7), 23 s CPU for tools/test.py.
# ResNet-18: mask-rcnn_r18_fpn_tiny.py (same, depth 18 and FPN in_channels [64, 128, 256, 512]).
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './_base_/tiny_coco_instance.py',
          './_base_/tiny_det_schedule.py']
custom_imports = dict(imports=['transfer.mm.mmdet'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/resnet50_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
# Fewer proposals, sampled RoIs and detections than upstream's 2000/1000/512/100: the RoI heads dominate
# the CPU cost (two 1024-wide fc layers, the mask head's convs per detection), and a tiny image holds <= 6
# objects.
model = dict(
    backbone=dict(type='DarResNet', init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint)),
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))
