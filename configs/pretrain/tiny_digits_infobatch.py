# Tiny CPU demo / test: InfoBatch (Qin et al., ICLR 2024) on scikit-learn's digits. After each epoch, half
# (prune_ratio r=0.5) of the samples whose last training loss is below the mean are dropped at random for
# the next epoch and the other half trained with loss weight 1/(1-r)=2; epochs 1-5 prune (ceil(0.8 x 6)),
# epoch 6 trains all data with weight 1 (the paper's annealing; delta=0.8 rather than its 0.875 so that
# 6 epochs keep one full epoch).
# Launch: python tools/train.py configs/pretrain/tiny_digits_infobatch.py   (add --dry-run to see the bound)
# Cost: depends on the losses -- at least 66.7% of tiny_digits_uniform.py in samples and FLOPs (the
# dry-run's bound), about 80% measured (log.jsonl: kept_fraction per epoch); about 10-20 s on one CPU core.
_base_ = ['./_base_/tiny_digits.py']
method = dict(type='infobatch', prune_ratio=0.5, delta=0.8)
