# ImageNet ResNet-50, InfoBatch (Qin et al., ICLR 2024: ResNet-50 on ImageNet-1K at its r=0.5, delta=0.875
# saves ~40% of the cost at the baseline's accuracy, on its own recipe) on the DaR papers' 120-epoch step
# recipe: after each epoch, half of the samples whose last loss is below the mean are pruned at random and
# the other half trained with loss weight 2; epochs 106-120 (after ceil(0.875 x 120) = 105) train all data.
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_infobatch_120e.py 8
# Cost: depends on the losses -- at least 56.7% of imagenet_r50_uniform_120e.py in samples and FLOPs (the
# --dry-run bound: all but one sample below the mean); the paper's ~60-65% is the likely figure;
# log.jsonl records the achieved kept_fraction per epoch.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='infobatch', prune_ratio=0.5, delta=0.875)
