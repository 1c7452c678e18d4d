# ImageNet ResNet-50, Selective Backprop in Composer's form (Composer's ResNet-50 method card: -6%
# wall-clock at 76.46% top-1) on the DaR papers' 120-epoch step recipe: from 50% to 90% of the steps, every
# other batch is scored at 112 px (scale_factor 0.5, no gradient, every model state restored -- Composer's
# train-mode scoring lets BatchNorm absorb the scoring images) and 16 of its 32 samples per GPU are
# trained, drawn toward high loss; selection is per GPU with a per-rank checkpointed generator.
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_selective_backprop_120e.py 8
# Cost: 90% of imagenet_r50_uniform_120e.py's trained samples, ~91.7% of its FLOPs with the scoring
# forwards (20% of the steps select: 0.2 x 0.5 dropped, +0.2 x (112/224)^2 / 3 scored; exact: --dry-run).
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='selective_backprop', start=0.5, end=0.9, keep=0.5, scale_factor=0.5, interrupt=2)
