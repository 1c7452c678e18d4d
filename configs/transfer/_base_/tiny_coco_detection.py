# Tiny COCO detection data: mmdet's `_base_/datasets/coco_detection.py` pointed at the synthetic 3-class
# COCO that `python tools/make_tiny_data.py data/tiny` writes (200 train / 50 val images of 128x96), at 128 px,
# with CPU loaders (no worker processes). Shared by the tiny detection configs (Faster R-CNN, RetinaNet) and,
# with masks, by _base_/tiny_coco_instance.py. Move it with --data-root DIR/coco.
# Cost: reading and resizing 12 training and 8 val images per epoch (well under a second).
_base_ = ['mmdet::_base_/datasets/coco_detection.py']

data_root = 'data/tiny/coco/'
# transfer.tinydata.TINY_COCO_CLASSES (category ids 1..3); a test checks they agree.
metainfo = dict(classes=('circle', 'rectangle', 'triangle'))
scale = (128, 128)  # the long side of the tiny images (tools/make_tiny_data.py --size, default 128)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# 1 epoch = the first 12 training images (6 iterations of batch 2): the R50 smoke runs; the R18 configs use all.
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
