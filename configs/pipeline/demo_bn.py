# What BatchNorm recalibration does to DaR's transfer rows (issue 12, item 3), on the embedded demo's data
# (configs/pipeline/demo.py: the synthetic shapes pre-training set, the tiny COCO / Cityscapes):
#     uniform   the 100% baseline,
#     dar       Drop-and-Refresh W=1, I=1, p=0.6, R=[4] (76%): its last epoch trains a 60% subset,
#     dar_bn    the same run, then BN statistics recalibrated over all 1350 training images (seed 0):
#               its rows read `dar+bn` (a recalibrated backbone is not a seed of the plain one).
#   2 seeds each, fine-tuned with the demo's Faster R-CNN and PSPNet recipes, two stages at a time.
# Launch: python tools/pipeline.py configs/pipeline/demo_bn.py
# Cost (2-core CPU): 6 pre-trainings and 12 fine-tune+test runs; 17.5 min at nice 19 beside a test run (not
#   timed alone; ~5 min expected from the demo's stage times). What it showed: docs/pretrain.md.
_base_ = ['./demo.py']
report_dir = 'work_dirs/demo_bn'
methods = [
    dict(name='uniform', config='configs/pretrain/tiny_digits_uniform.py'),
    dict(name='dar', config='configs/pretrain/tiny_digits_dar.py'),
    dict(name='dar_bn', config='configs/pretrain/tiny_digits_dar.py',
         cfg_options={'bn_recalibrate.samples': 1350, 'bn_recalibrate.seed': 0}),
]
transfer_methods = ['uniform', 'dar', 'dar_bn']
scratch = False
tasks = [
    dict(task='det', config='configs/transfer/faster-rcnn_r18_fpn_tiny.py'),
    dict(task='seg', config='configs/transfer/pspnet_r18b-d8_tiny.py'),
]
