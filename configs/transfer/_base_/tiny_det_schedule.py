# Tiny detection schedule: mmdet's 1x schedule and default runtime cut to 1 epoch (6 iterations of the tiny
# data), with upstream's SGD learning rate scaled to batch 2 (0.02 x 2/16; a recipe with another base rate,
# e.g. RetinaNet's 0.01, sets its own), a short warm-up, and a log line every 4 iterations.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py']

train_cfg = dict(max_epochs=1, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=0.0025))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
default_hooks = dict(logger=dict(interval=4))
