# Tiny CPU smoke run of td-hm_res50_8xb64-210e_coco-256x192.py: same model (DarResNet-50 + SimpleBaseline
# deconv heatmap head, flip test), on the synthetic COCO keypoints that `python tools/make_tiny_data.py
# data/tiny` writes (mannequins with 17 joints, plus the person-box detection file top-down testing reads),
# at 128x96 input instead of 256x192. Proves the pipeline end to end (our weights -> training ->
# xtcocotools keypoint AP); the numbers mean nothing beyond "it learns and evaluates".
# Launch: python tools/train.py configs/transfer/td-hm_res50_tiny.py --backbone resnet50.pth
#           [--data-root DIR/coco] (default data/tiny/coco; make it with tools/make_tiny_data.py DIR)
# Cost: 1 epoch of ~4 iterations of batch 8, then the val persons with flip test. Measured on a shared
#   2-core CPU: 42 s CPU time for train+val (87 s wall at load 7), 16 s CPU for tools/test.py.
# ResNet-18: td-hm_res18_tiny.py (depth 18, head in_channels 512); ResNet-101: td-hm_res101_tiny.py.
_base_ = ['./td-hm_res50_8xb64-210e_coco-256x192.py']

data_root = 'data/tiny/coco/'
codec = dict(type='MSRAHeatmap', input_size=(96, 128), heatmap_size=(24, 32), sigma=2)

model = dict(head=dict(decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=val_pipeline,
                 bbox_file=data_root + 'person_detection_results/COCO_val2017_detections_AP_H_56_person.json'))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator

# 1 epoch; Adam 5e-4 as upstream (its batch 512 does not fit here, the rate is kept), short warm-up.
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [dict(type='LinearLR', begin=0, end=2, start_factor=0.1, by_epoch=False)]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(interval=1))
