# ImageNet ResNet-50, SeTa -- scale efficient training (Zhou et al., CVPR 2025: ImageNet ResNet-50 at 30-50%
# less training for 0.1-1 point of top-1) with the official ImageNet script's settings (no random drop,
# prune_ratio 0; 5 loss clusters; a window of round(5 x 0.6) = 3 clusters sliding from easy to hard; the
# last 12.5% of the epochs anneal) on the DaR papers' 120-epoch step recipe: epochs 1-105 cluster the last
# training losses by seeded 1-D k-means and train the window, epochs 106-120 train all the data.
# Launch (8 GPUs): tools/dist_train.sh configs/pretrain/imagenet_r50_seta_120e.py 8
# Cost: depends on the loss clusters' sizes -- at most 100% of imagenet_r50_uniform_120e.py (the dry-run's
# bound: with prune_ratio 0 the random draw is all the data); no extra forward pass (SeTa reads the
# training losses); the achieved figures are in log.jsonl and its summary.
_base_ = ['./_base_/imagenet_r50.py']
method = dict(type='seta', prune_ratio=0.0, num_group=5, window_scale=0.6, delta=0.875)
