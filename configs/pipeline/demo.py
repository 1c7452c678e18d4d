# The embedded demo: the whole main job (pre-train -> publish -> fine-tune -> test -> comparison report) on
# data that ships with the installed packages, on a CPU, with no download.
#   Pre-training: a timm ResNet-18 (random init) on scikit-learn's handwritten digits (1347 train / 450 val,
#   upsampled to 32 px), 6 epochs, 2 seeds, with
#     uniform       every sample every epoch (the 100% baseline),
#     dar           Drop-and-Refresh W=1, I=1, p=0.6, R=[4]: subsets 100/100/60/36/100/60% -> 76% cost,
#     online        fast online minibatch selection, pool 2b scored at 16 px: 100% samples, ~114% FLOPs,
#     random_drop   the equal-budget control: DaR's schedule with random instead of loss-ranked dropping (76%).
#   Each backbone is published (published/<name>-<sha256[:8]>.pth + published/metafile.yml).
#   Transfer: seed 0's backbones fine-tuned and tested on the tiny generated COCO / Cityscapes
#   (tools/make_tiny_data.py, written to data/tiny if missing) with the paper's four recipes at ResNet-18
#   size: Faster R-CNN FPN (det), Mask R-CNN (ins), SimpleBaseline (pose), PSPNet (seg), and RetinaNet (a
#   second det recipe, its own stages, folders and table row: entries are named apart from their task).
#   Report: work_dirs/demo/report.md with the tables of the DaR paper's shape (Tables 4-7) and the plots.
# Launch:  make demo    (= python tools/pipeline.py configs/pipeline/demo.py)
#          python tools/pipeline.py configs/pipeline/demo.py --quick            # all stages, fewest iterations
#          python tools/pipeline.py configs/pipeline/demo.py --methods uniform,dar --tasks seg --seeds 0
#          Rerunning resumes; --dry-run lists the stages.
# Cost (2-core CPU, docs/pipeline.md has the breakdown): 48 stages, ~15.5 min of CPU; measured 16 min
#   wall-clock with other jobs sharing the machine, ~13-15 min on an idle one. --quick: 24 stages, ~8.5 min
#   of CPU. A rerun of a finished pipeline only rebuilds the report (seconds).
# The tiny numbers only show that every stage works and what the report looks like; they say nothing
# about the methods (the transfer sets have 24 training images).
report_dir = 'work_dirs/demo'
arch = 'resnet18'  # model.arch of every pre-training config below; the transfer configs are ResNet-18 ones
seeds = [0, 1]
transfer_seeds = [0]
tiny_data = dict(root='data/tiny', args=[])  # generated with tools/make_tiny_data.py when missing
data_roots = dict(coco='data/tiny/coco', cityscapes='data/tiny/cityscapes')  # det/ins/pose: coco, seg: cityscapes

# A checkpoint every 3 epochs (6 of ResNet-18 would be 270 MB per run).
pretrain_cfg_options = {'runtime.checkpoint_interval': 3}
# The test stage evaluates; skipping validation inside fine-tuning avoids evaluating twice. A fixed
# fine-tuning seed leaves the pre-trained weights as the only difference between the methods' runs.
transfer_cfg_options = {'val_cfg': None, 'val_dataloader': None, 'val_evaluator': None, 'randomness.seed': 0}

methods = [
    dict(name='uniform', config='configs/pretrain/tiny_digits_uniform.py'),
    dict(name='dar', config='configs/pretrain/tiny_digits_dar.py'),
    dict(name='online', config='configs/pretrain/tiny_digits_online.py'),
    dict(name='random_drop', config='configs/pretrain/tiny_digits_dar_random.py'),
]
# Detectors keep every box at test time (score_thr 0): after a few iterations they are not yet confident,
# and an empty result set would leave COCO AP undefined instead of low.
tasks = [
    dict(task='det', config='configs/transfer/faster-rcnn_r18_fpn_tiny.py',
         cfg_options={'model.test_cfg.rcnn.score_thr': 0.0}),
    dict(name='retinanet', task='det', config='configs/transfer/retinanet_r18_fpn_tiny.py',
         cfg_options={'model.test_cfg.score_thr': 0.0}),
    dict(task='ins', config='configs/transfer/mask-rcnn_r18_fpn_tiny.py',
         cfg_options={'model.test_cfg.rcnn.score_thr': 0.0}),
    dict(task='pose', config='configs/transfer/td-hm_res18_tiny.py'),
    dict(task='seg', config='configs/transfer/pspnet_r18b-d8_tiny.py'),
]

# --quick: every stage of the same pipeline with the fewest iterations (what CI runs); own report folder.
quick = dict(
    seeds=[0],
    transfer_methods=['uniform', 'dar'],
    pretrain_cfg_options={'data.img_size': 16},
    transfer_cfg_options={},
)
