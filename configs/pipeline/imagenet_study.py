# The DaR paper's transfer study (Tables 4-7) on a GPU cluster, with the equal-budget controls.
#   Pre-training: ResNet-50 on ImageNet-1k, 120 epochs, the papers' step schedule, one seed, with
#     uniform       100% (the baseline; ~76-77% top-1)
#     dar86         Drop-and-Refresh p=0.95: 86.0% of the samples (the DaR paper's 86% column)
#     dar74         Drop-and-Refresh p=0.90: 73.9% (the DaP paper's 75% column)
#     random74      DaR74's schedule with random dropping (equal-budget control)
#     online        fast online minibatch selection (100% samples, ~111% FLOPs)
#     infobatch, selective_backprop, kakurenbo   the literature's methods (issue 11; docs/selection.md):
#                   ~60-75%, 91.7%, ~85-90% of the FLOPs -- +~2.5 uniform runs of pre-training and three
#                   more methods' transfer on top of the cost below
#   Transfer (upstream OpenMMLab recipes, only the backbone weights changed): Faster R-CNN R50-FPN 1x and
#   Mask R-CNN R50-FPN 1x on COCO 2017 (Table 5), SimpleBaseline R50 256x192 on COCO keypoints (Table 6 uses
#   ResNet-101: see below), PSPNet R50b-D8 80k on Cityscapes 769x769 (Table 7). Then tables, plots, report.
# Launch (one 8-GPU node; every stage runs through torchrun, stages one after another, resumable):
#   python tools/pipeline.py configs/pipeline/imagenet_study.py \
#       --cfg-options data_roots.imagenet=/datasets/imagenet data_roots.coco=/datasets/coco \
#                     data_roots.cityscapes=/datasets/cityscapes
#   torchrun across nodes: the same command on every node with NNODES=2 NODE_RANK=<0|1> MASTER_ADDR=<node 0>
#     and launch.gpus per node (node 0 publishes, marks stages done and writes the report).
#   slurm (srun spans nodes when gpus > gpus_per_node):
#     ... --cfg-options launch.launcher=slurm launch.partition=<partition> launch.gpus.default=16
#   Check it first: --dry-run validates everything and lists the stages; --methods/--tasks run a subset;
#   the launch setup itself can be smoke-tested in minutes with the demo: python tools/pipeline.py
#   configs/pipeline/demo.py --quick --cfg-options launch.launcher=pytorch launch.gpus.default=2
#   Table 6's ResNet-101: a config with `_base_ = ['./imagenet_study.py']`, arch = 'resnet101',
#   tasks = [dict(task='pose', config='configs/transfer/td-hm_res101_8xb64-210e_coco-256x192.py')] and
#   its own report_dir.
# Cost (8 GPUs per stage; upstream / the papers' V100 figures, A100 roughly 2x faster):
#   pre-training 1.00 + 0.86 + 0.74 + 0.74 + 1.11 = 4.45 uniform runs of 2-3 days on 8 V100 (~1 day on
#   8 A100) -> ~10-13 node-days (V100); transfer per method ~5 h (FPN) + ~7 h (Mask R-CNN) + ~1 day (pose)
#   + ~1 day on 4 GPUs (PSPNet) -> ~12 node-days for the five methods. About 3-4 weeks of one 8-V100 node
#   in all; the report folder takes ~20 GB (checkpoints).
report_dir = 'work_dirs/imagenet_study'
arch = 'resnet50'
seeds = [0]
transfer_seeds = [0]

data_roots = dict(imagenet='data/imagenet', coco='data/coco', cityscapes='data/cityscapes')
pretrain_data = 'imagenet'  # its folder becomes data.root of every pre-training run

launch = dict(
    launcher='pytorch',  # torchrun; 'slurm' uses srun with the keys below
    gpus=dict(default=8, seg=4),  # PSPNet's upstream recipe is 4 GPUs x 2 crops
    partition=None, gpus_per_node=8, cpus_per_task=5, srun_args=[],
)

pretrain_cfg_options = {}
transfer_cfg_options = {}

methods = [
    dict(name='uniform', config='configs/pretrain/imagenet_r50_uniform_120e.py'),
    dict(name='dar86', config='configs/pretrain/imagenet_r50_dar86_120e.py'),
    dict(name='dar74', config='configs/pretrain/imagenet_r50_dar74_120e.py'),
    dict(name='random74', config='configs/pretrain/imagenet_r50_dar74_random_120e.py'),
    dict(name='online', config='configs/pretrain/imagenet_r50_online_120e.py'),
    dict(name='infobatch', config='configs/pretrain/imagenet_r50_infobatch_120e.py'),
    dict(name='selective_backprop', config='configs/pretrain/imagenet_r50_selective_backprop_120e.py'),
    dict(name='kakurenbo', config='configs/pretrain/imagenet_r50_kakurenbo_120e.py'),
    # further equal-budget controls at 74%:
    # dict(name='shortened74', config='configs/pretrain/imagenet_r50_shortened74.py'),
    # dict(name='fixed74', config='configs/pretrain/imagenet_r50_fixed74_120e.py'),
]
tasks = [
    dict(task='det', config='configs/transfer/faster-rcnn_r50_fpn_1x_coco.py'),
    # a second detection recipe beside it (own stages, folders and table rows; ~5 h more per method):
    # dict(name='retinanet', task='det', config='configs/transfer/retinanet_r50_fpn_1x_coco.py'),
    dict(task='ins', config='configs/transfer/mask-rcnn_r50_fpn_1x_coco.py'),
    dict(task='pose', config='configs/transfer/td-hm_res50_8xb64-210e_coco-256x192.py'),
    dict(task='seg', config='configs/transfer/pspnet_r50b-d8_4xb2-80k_cityscapes-769x769.py'),
    # The "Rethinking" axes (docs/pipeline.md, "Transfer axes"; configs/pipeline/demo_rethinking.py on CPU):
    # 10% of COCO train2017 (11.8k images, a seeded subset, the same for every method): write the det entry
    # above as dict(task='det', config=..., data_fraction=[0.1, 1.0]). With the default
    # fraction_schedule='iterations' the 1x schedule keeps its steps (12 epochs -> 120 epochs of the subset,
    # milestones 80/110): ~5 h per method on 8 V100, as the full-data run (estimate: same iterations).
    # fraction_schedule='scaled' keeps 12 epochs of the subset instead: ~0.5 h per method (estimate).
    # The frozen protocol (every backbone stage frozen, BN in eval mode; the FPN and heads train): its own
    # rows. Estimate ~3-4 h per method on 8 V100 (no backbone backward pass; not measured).
    # dict(name='det_frozen', task='det', config='configs/transfer/faster-rcnn_r50_fpn_1x_coco.py', frozen=True),
]
# Fine-tuning curves: K evenly spaced validations per fine-tuning, K must divide each schedule (12 epochs,
# 210 epochs, 80k iterations): curve_points=2 for all, or per entry curve_points=4 for det/ins/seg (every 3
# epochs / 20k iterations) and 6 for pose (every 35 epochs). Costs evaluations only: COCO val2017 (5k images)
# ~5-10 min on 8 GPUs each (estimate), K-1 more per run than today.
# curve_points = 2
