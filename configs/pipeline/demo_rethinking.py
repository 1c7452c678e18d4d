# "Rethinking ImageNet pre-training" (He et al., 2019) on the embedded demo: where does a cheaper pre-training
# lose, if it loses? The paper found pre-training speeds up convergence, matters with little data, and helps
# less on localization-sensitive metrics; backbone benchmarks also compare frozen against fine-tuned. This
# pipeline runs each of those axes for uniform, DaR (76% cost) and scratch (no pre-training), 2 seeds:
#   curves     every fine-tuning validates at 4 evenly spaced points (curve_points: evaluations only),
#   fractions  Faster R-CNN and PSPNet on 10% and 100% of the tiny training images (data_fraction: a seeded
#              subset, the same for every method and seed; fraction_schedule 'iterations': the same 60 steps),
#   frozen     the same two recipes with every backbone stage frozen and BN in eval mode (frozen=True),
#   probes     kNN and dense probes after pre-training epochs 2, 4 and 6, so the report can say whether the probe
#              (at the end, and at a quarter of pre-training) ranks the runs as fine-tuning does (Kendall's τ).
#   Report: work_dirs/demo_rethinking/report.md opens with the Rethinking summary (Δ vs uniform at the first
#   curve point and the end, 10% and 100% data, frozen and fine-tuned; ΔAP50 vs ΔAP75), then the curves and
#   convergence tables, the probe-agreement table and the usual tables with a row block per setting.
# Launch:  python tools/pipeline.py configs/pipeline/demo_rethinking.py      (--quick: 1 seed, 6 iterations)
# Cost: 4 pre-trainings with probes and 36 fine-tune+test runs (2 recipes x 3 settings x 3 methods x 2 seeds),
#   each ~25-45 s on one core on an idle 2-core machine (an earlier measurement) plus 4 validations; two at a time
#   roughly 12-15 min (estimate). Run in full from a fresh clone on 7 Dec 2026 (80 stages; the report had
#   every table above): 5,703 s wall, of which 51 min paused and ~15 min beside the test suite, so ~44 min
#   of running on a shared 2-core machine, not an idle figure.
_base_ = ['./demo.py']

report_dir = 'work_dirs/demo_rethinking'
methods = [
    dict(name='uniform', config='configs/pretrain/tiny_digits_uniform.py'),
    dict(name='dar', config='configs/pretrain/tiny_digits_dar.py'),
]
transfer_methods = ['uniform', 'dar']
scratch = True
curve_points = 4
subset_seed = 0  # which images each fraction keeps (nested: the 10% lie inside any larger fraction)
# probes after epochs 2, 4 and 6: the quarter-of-pre-training probe is the one after epoch 2 (ceil(6/4));
# no FLOP budget (the default 5% leaves the dense probe no training images at this size): probes cost what
# they cost, on top of the pre-training
pretrain_cfg_options = {'runtime.checkpoint_interval': 3, 'data.type': 'imagefolder', 'probe.every': 2,
                        'probe.budget': None, 'probe.tasks': ['knn', 'dense'],
                        'probe.dense.root': 'data/tiny/cityscapes'}
_det = 'configs/transfer/faster-rcnn_r18_fpn_tiny.py'
_seg = 'configs/transfer/pspnet_r18b-d8_tiny.py'
tasks = [
    dict(task='det', config=_det, data_fraction=[0.1, 1.0]),
    dict(task='seg', config=_seg, data_fraction=[0.1, 1.0]),
    dict(name='det_frozen', task='det', config=_det, frozen=True),
    dict(name='seg_frozen', task='seg', config=_seg, frozen=True),
]
quick = dict(
    seeds=[0],
    transfer_seeds=[0],
    scratch=True,
    curve_points=2,
    pretrain_cfg_options={'data.img_size': 16},
    transfer_cfg_options={'train_cfg.max_iters': 6},
)
