# The embedded demo with the literature's selection methods (issue 11) and online selection instead of DaR: the whole
# main job (pre-train -> publish -> fine-tune -> test -> comparison report) on data that ships with the
# installed packages, on a CPU, with no download. Everything but the methods is configs/pipeline/demo.py.
#   Pre-training: a timm ResNet-18 on demo.py's synthetic shapes set (32 px, 6 epochs, 2 seeds), with
#     uniform             every sample every epoch (the 100% baseline),
#     infobatch           InfoBatch r=0.5, delta=0.8 (prunes half of the below-mean-loss samples, weight 2),
#     selective_backprop  Composer's Selective Backprop (keep 0.5 from 50% to 90% of the steps, 16 px scoring),
#     kakurenbo           KAKURENBO F=0.3, tau=0.7, 1 warm-up epoch (hides confident easy samples, LR x 1/(1-F)),
#     online              fast online minibatch selection, pool 2b scored at 16 px: 100% samples, ~114% FLOPs.
#   Transfer and report: as in demo.py (five tiny recipes on the generated COCO / Cityscapes).
# Launch:  python tools/pipeline.py configs/pipeline/demo_methods.py            (--quick: fewest iterations)
# Cost (2-core CPU): 10 pre-trainings and 50 fine-tune+test runs (4 methods + scratch, 2 seeds, 5 recipes),
#   two at a time: 120 stages in 22:48 (1383 s wall, idle 2-core machine, 2026-12-01). Its own report folder,
#   so it runs beside the demo; kept apart from demo.py to hold the demo to its 15-minute budget.
# As in the demo, the tiny numbers only show that every stage works; they say nothing about the methods.
_base_ = ['./demo.py']
report_dir = 'work_dirs/demo_methods'
methods = [
    dict(name='uniform', config='configs/pretrain/tiny_digits_uniform.py'),
    dict(name='infobatch', config='configs/pretrain/tiny_digits_infobatch.py'),
    dict(name='selective_backprop', config='configs/pretrain/tiny_digits_selective_backprop.py'),
    dict(name='kakurenbo', config='configs/pretrain/tiny_digits_kakurenbo.py'),
    dict(name='online', config='configs/pretrain/tiny_digits_online.py'),  # ours, out of make demo's 15 min
]
transfer_methods = ['uniform', 'infobatch', 'selective_backprop', 'kakurenbo']  # online: classification table
quick = dict(
    seeds=[0],
    transfer_methods=['uniform', 'infobatch'],
    pretrain_cfg_options={'data.img_size': 16},
    transfer_cfg_options={},
)
