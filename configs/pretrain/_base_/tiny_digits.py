# Shared settings of the tiny CPU configs (tiny_digits_*.py): scikit-learn's handwritten digits
# (1347 train / 450 val images, 10 classes, shipped with scikit-learn: no download), upsampled to 32 px
# RGB, a ~0.4M-parameter timm test_resnet, 6 epochs, batch 32, one CPU thread.
# Not meant to be run by itself: each tiny_digits_<method>.py adds the method.
model = dict(arch='test_resnet')
data = dict(
    type='digits', img_size=32, batch_size=32, num_workers=0,
    scale=(0.5, 1.0),  # random-resized crop; 8% crops of an 8x8 digit leave nothing to learn from
    hflip=0.0,  # mirrored digits are other digits
    crop_pct=1.0)
optim = dict(lr=0.8, lr_batch=256, momentum=0.9, weight_decay=1e-4)  # 0.1 at batch 32
schedule = dict(epochs=6, sched='step', milestones=[5], decay_rate=0.1, warmup_epochs=0)
runtime = dict(cpu_threads=1, checkpoint_interval=1, eval_interval=1)
seed = 0
