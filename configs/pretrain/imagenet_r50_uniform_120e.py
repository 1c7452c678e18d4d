# ImageNet ResNet-50, uniform sampling, 120 epochs: the 100% baseline of the DaR / DaP papers (Table 7,
# "re-implementation" column; about 76-77% top-1).
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_uniform_120e.py 8
# Cost: 120 x 1.28M = 154M trained samples (100%); roughly 2-3 days on 8 V100s, ~1 day on 8 A100s (AMP).
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='uniform')
