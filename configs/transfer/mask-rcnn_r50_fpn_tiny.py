# Tiny CPU smoke run of mask-rcnn_r50_fpn_1x_coco.py: same model (DarResNet-50 + FPN + RPN + box/mask heads,
# BN), on the synthetic 3-class COCO that `python tools/make_tiny_data.py data/tiny` writes (24 train / 8
# val images of ~256x192, polygon masks). Proves the pipeline end to end (our weights -> training ->
# pycocotools bbox and segm AP); the numbers mean nothing beyond "it learns and evaluates".
# Launch: python tools/train.py configs/transfer/mask-rcnn_r50_fpn_tiny.py --backbone resnet50.pth
#           [--data-root DIR/coco] (default data/tiny/coco; make it with tools/make_tiny_data.py DIR)
# Cost: 6 iterations of batch 2 at 192 px, then 8 val images. Measured on a shared 2-core CPU: 72 s CPU
#   time for train+val (147 s wall at load 7), 23 s CPU for tools/test.py.
# ResNet-18: mask-rcnn_r18_fpn_tiny.py (same, depth 18 and FPN in_channels [64, 128, 256, 512]).
_base_ = ['./mask-rcnn_r50_fpn_1x_coco.py']

data_root = 'data/tiny/coco/'
# transfer.tinydata.TINY_COCO_CLASSES (category ids 1..3); a test checks they agree.
metainfo = dict(classes=('circle', 'rectangle', 'triangle'))
scale = (192, 192)

# Fewer proposals, sampled RoIs and detections than upstream's 2000/1000/512/100: the RoI heads dominate
# the CPU cost (two 1024-wide fc layers, the mask head's convs per detection), and a tiny image holds <= 6
# objects.
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline, indices=12,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8)))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# 1 epoch over the first 12 training images (6 iterations), lr scaled to batch 2 (0.02 x 2/16), short warm-up.
train_cfg = dict(max_epochs=1, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=0.0025))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
default_hooks = dict(logger=dict(interval=4))
