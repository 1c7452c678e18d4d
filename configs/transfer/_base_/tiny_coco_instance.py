# Tiny COCO instance data: _base_/tiny_coco_detection.py with the polygon masks loaded and evaluated (bbox
# and segm AP), as mmdet's `coco_instance.py` is `coco_detection.py` with masks. Used by the tiny Mask R-CNN.
# Cost: as tiny_coco_detection.py, plus decoding the masks.
_base_ = ['./tiny_coco_detection.py']


def _with_masks(pipeline):  # the same steps, LoadAnnotations loading the masks too
    return [dict(step, with_mask=True) if step['type'] == 'LoadAnnotations' else step for step in pipeline]


train_pipeline = _with_masks(_base_.train_pipeline)
test_pipeline = _with_masks(_base_.test_pipeline)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
