# The embedded demo: the whole main job (pre-train -> publish -> fine-tune -> test -> comparison report) on
# data that ships with the installed packages, on a CPU, with no download.
#   Pre-training: a timm ResNet-18 (random init) on the SYNTHETIC shapes set that tools/make_tiny_data.py
#   writes beside the transfer sets (data/tiny/shapes: 1350 train / 450 val 32-px images, 10 classes =
#   3 shapes x 3 colour families + none, on crops of photographs shipped with scikit-learn/matplotlib),
#   drawn like the tiny transfer sets so that pre-training can transfer: from scikit-learn's digits (grey
#   8x8 strokes: the pre-training configs' own data; drop pretrain_data and data.type below to go back)
#   the detectors did worse than from scratch. 6 epochs, 2 seeds, with
#     uniform       every sample every epoch (the 100% baseline),
#     dar           Drop-and-Refresh W=1, I=1, p=0.6, R=[4]: subsets 100/100/60/36/100/60% -> 76% cost,
#     dar_random    the equal-budget control: DaR's schedule with random instead of loss-ranked dropping (76%)
#                   (method dar_random; the entry, its folders, table rows and plots all say dar_random).
#   Each backbone is published (published/<name>-<sha256[:8]>.pth + published/metafile.yml).
#   Transfer: uniform's and DaR's backbones of both seeds (each fine-tuned with its own seed) and a
#   randomly initialised one (`scratch`, seeds 0 and 1: the "Rethinking ImageNet pre-training" question,
#   and the check that weights load) fine-tuned and tested on the tiny generated COCO / Cityscapes
#   (tools/make_tiny_data.py, written to data/tiny if missing: 200 train / 50 val images per set at 128 px,
#   1-3 large shapes per image) with the paper's four recipes at ResNet-18 size -- Faster R-CNN FPN (det),
#   Mask R-CNN (ins), SimpleBaseline (pose), PSPNet (seg) -- and RetinaNet (a second det recipe, its own
#   stages, folders and table row), for 60-100 iterations (the R18 tiny configs say why and what it costs).
#   Report: work_dirs/demo/report.md with the tables of the DaR paper's shape (Tables 4-7) and the plots.
# Launch:  make demo    (= python tools/pipeline.py configs/pipeline/demo.py)
#          python tools/pipeline.py configs/pipeline/demo.py --quick            # all stages, fewest iterations
#          python tools/pipeline.py configs/pipeline/demo.py --methods uniform,dar --tasks seg --seeds 0
#          Rerunning resumes; --dry-run lists the stages; --jobs 1 runs one stage at a time.
# Cost (2-core CPU, measured from a fresh clone on 7 Dec 2026): 73 stages -- 6 pre-trainings, 30 fine-tune+test
#   runs (fine-tunings 1:15-2:10 each on one core, their 4 curve validations included) -- two at a time:
#   `make demo` 1,997 s (33 min) wall. Before the fine-tuning curves (an earlier session): 730 s, one stage at a
#   time on both cores 1.56x that. --quick: 1 seed, 6 iterations per fine-tuning (2 curve points), no
#   scratch, its own smaller tiny data (data/tiny_quick): 26 stages in 4:27 wall on an idle machine (7:03 on
#   the demo's data, measured side by side on 7 Dec 2026). A rerun only rebuilds the report (~35 s).
# What the numbers say: README.md quotes the report of a fresh `make demo`.
report_dir = 'work_dirs/demo'
launch = dict(jobs=2)  # two stages at once, one core each (--jobs 1: one at a time, on both cores)
arch = 'resnet18'  # model.arch of every pre-training config below; the transfer configs are ResNet-18 ones
seeds = [0, 1]
transfer_seeds = [0, 1]  # each fine-tuned with its own seed: Δ rows pair the runs by seed
transfer_methods = ['uniform', 'dar']  # dar_random is pre-trained for the classification table
scratch = True  # every entry also fine-tuned from a randomly initialised backbone (the `scratch` rows)
tiny_data = dict(root='data/tiny', args=[])  # generated with tools/make_tiny_data.py when missing
# det/ins/pose: coco, seg: cityscapes, pre-training: shapes (all generated into tiny_data.root)
data_roots = dict(coco='data/tiny/coco', cityscapes='data/tiny/cityscapes', shapes='data/tiny/shapes')
pretrain_data = 'shapes'

# A checkpoint every 3 epochs (6 of ResNet-18 would be 270 MB per run); the shapes set is an ImageFolder.
pretrain_cfg_options = {'runtime.checkpoint_interval': 3, 'data.type': 'imagefolder'}
# Fine-tuning curves: each fine-tuning validates at 4 evenly spaced points of its schedule (every 15 or 25
# iterations; metrics.json keeps them all), which costs evaluations only: the report's curve plots and
# convergence tables. The fine-tuning seed is the run's seed (the pipeline sets randomness.seed): runs of
# one seed differ only in the weights.
curve_points = 4

methods = [
    dict(name='uniform', config='configs/pretrain/tiny_digits_uniform.py'),
    dict(name='dar', config='configs/pretrain/tiny_digits_dar.py'),
    dict(name='dar_random', config='configs/pretrain/tiny_digits_dar_random.py'),
]
# Detectors test at their recipes' score threshold: a detector that finds nothing scores COCO AP 0 (the
# metrics hook writes COCO's numbers for an empty result set), it does not lose its row.
tasks = [
    dict(task='det', config='configs/transfer/faster-rcnn_r18_fpn_tiny.py'),
    dict(name='retinanet', task='det', config='configs/transfer/retinanet_r18_fpn_tiny.py'),
    dict(task='ins', config='configs/transfer/mask-rcnn_r18_fpn_tiny.py'),
    dict(task='pose', config='configs/transfer/td-hm_res18_tiny.py'),
    dict(task='seg', config='configs/transfer/pspnet_r18b-d8_tiny.py'),
]

# --quick: every stage of the same pipeline with the fewest iterations and images (what CI runs); own
# report folder and own tiny data (a third of the shapes images, 24 train / 8 val scenes per transfer set):
# the pre-trainings, which were half of --quick's time, and each validation cost a third or less.
quick = dict(
    tiny_data=dict(root='data/tiny_quick', args=['--num-train', '24', '--num-val', '8',
                                                  '--classification', '450', '150']),
    data_roots=dict(coco='data/tiny_quick/coco', cityscapes='data/tiny_quick/cityscapes',
                    shapes='data/tiny_quick/shapes'),
    seeds=[0],
    transfer_seeds=[0],
    transfer_methods=['uniform', 'dar'],
    scratch=False,
    pretrain_cfg_options={'data.img_size': 16},
    transfer_cfg_options={'train_cfg.max_iters': 6},  # every R18 tiny config counts iterations
    curve_points=2,  # at iterations 3 and 6
)
