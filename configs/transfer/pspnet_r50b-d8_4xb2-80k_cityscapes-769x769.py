# PSPNet R50b-D8 (plain-stem ResNet-50, dilated to output stride 8), 769x769 crops, 80k iterations,
# Cityscapes fine, with OUR pre-trained ResNet-50 (papers' "PSPNet").
# Reproduces: mmseg 1.2 `pspnet/pspnet_r50b-d8_4xb2-80k_cityscapes-769x769.py`, upstream 78.5 mIoU (single
#   scale) with torchvision's ImageNet ResNet-50. The "b" variant uses the plain 7x7 stem (`ResNet`, not
#   the deep-stem `ResNetV1c`), whose keys are timm's. Every hyper-parameter is upstream's; the only change
#   is the backbone weights (`DarResNet` = mmseg's ResNet whose Pretrained checkpoint loads through
#   transfer.mm.checkpoint; `pretrained=None` because mmseg forbids it beside a backbone init_cfg).
# Launch (4 GPUs x 2 crops = batch 8, SGD 0.01, SyncBN):
#   tools/dist_train.sh configs/transfer/pspnet_r50b-d8_4xb2-80k_cityscapes-769x769.py 4 --backbone BACKBONE.pth
#   python tools/test.py configs/transfer/pspnet_r50b-d8_4xb2-80k_cityscapes-769x769.py work_dirs/pspnet_r50b-d8_4xb2-80k_cityscapes-769x769/iter_80000.pth
# Cost: 80k iterations x 8 crops of 769x769; upstream: 6.8 GB/GPU on 4 V100.
# Data: data/cityscapes/{leftImg8bit,gtFine}/{train,val}/<city>/ with *_gtFine_labelTrainIds.png.
_base_ = ['mmseg::pspnet/pspnet_r50b-d8_4xb2-80k_cityscapes-769x769.py']
custom_imports = dict(imports=['transfer.mm.mmseg'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/resnet50_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
model = dict(
    pretrained=None,
    backbone=dict(type='DarResNet', init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint)))
