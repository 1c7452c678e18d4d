# Tiny CPU smoke run of retinanet_r50_fpn_1x_coco.py: same model (DarResNet-50 + FPN P3-P7 + RetinaHead with
# focal loss, BN), on the synthetic 3-class COCO that `python tools/make_tiny_data.py data/tiny` writes (24
# train / 8 val images of ~256x192). Proves the one-stage path end to end (our weights -> training ->
# pycocotools bbox AP); the numbers mean nothing beyond "it learns and evaluates".
# Built like upstream's recipe from mmdet's model base, with the tiny data and schedule of _base_/ in place
# of COCO's and the 1x schedule, and upstream's lr 0.01 scaled to batch 2; a test checks that the model is
# retinanet_r50_fpn_1x_coco.py's but for the settings below.
# Launch: python tools/train.py configs/transfer/retinanet_r50_fpn_tiny.py --backbone resnet50.pth
#           [--data-root DIR/coco] (default data/tiny/coco; make it with tools/make_tiny_data.py DIR)
# Cost: 6 iterations of batch 2 at 128 px, then the val images; not measured yet for R50 (the R18
#   variant's header has its measured time).
# ResNet-18: retinanet_r18_fpn_tiny.py (same, depth 18 and FPN in_channels [64, 128, 256, 512]).
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', './_base_/tiny_coco_detection.py',
          './_base_/tiny_det_schedule.py']
custom_imports = dict(imports=['transfer.mm.mmdet'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/resnet50_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
# Fewer candidate boxes and detections than upstream's 1000/100: a tiny image holds <= 6 objects.
model = dict(
    backbone=dict(type='DarResNet', init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint)),
    bbox_head=dict(num_classes=3),
    test_cfg=dict(nms_pre=300, max_per_img=20))

optim_wrapper = dict(optimizer=dict(lr=0.00125))  # upstream's 0.01 x 2/16
