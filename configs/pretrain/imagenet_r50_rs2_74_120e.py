# ImageNet ResNet-50, RS2 without replacement (Okanovic et al., ICLR 2024: repeated random subsets beat 30+
# data-pruning methods at small budgets; the official ImageNet scripts train ResNet-18 for 200 rounds at
# r = 1/5/10% per round) as the strongest random control of imagenet_r50_dar74_120e.py: the DaR papers'
# 120-epoch step recipe, each epoch the next 73.9% of a random permutation of the data (a new permutation
# when one is used up), so the random subsets cover the data as evenly as possible at DaR-74's cost.
# Other budgets by one override, e.g. the paper's 10%: --cfg-options method.budget=0.1
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_rs2_74_120e.py 8
# Cost: 73.9% of imagenet_r50_uniform_120e.py in samples and FLOPs (946,783 of 1,281,167 images per epoch;
# exact figures: --dry-run), as imagenet_r50_dar74_120e.py.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='rs2', budget=0.739)
