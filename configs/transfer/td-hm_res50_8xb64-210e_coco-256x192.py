# SimpleBaseline (top-down heatmap) ResNet-50, 256x192, COCO 2017 keypoints, with OUR pre-trained ResNet-50.
# Reproduces: mmpose 1.3 `body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py`,
#   upstream 71.8 AP (COCO val, person detector AP 56 boxes) with torchvision's ImageNet ResNet-50. Every
#   hyper-parameter is upstream's; the only change is the backbone weights (`DarResNet` = mmpose's ResNet
#   whose Pretrained checkpoint loads through transfer.mm.checkpoint).
# Launch (8 GPUs x 64 = batch 512, Adam 5e-4):
#   tools/dist_train.sh configs/transfer/td-hm_res50_8xb64-210e_coco-256x192.py 8 --backbone BACKBONE.pth
#   python tools/test.py configs/transfer/td-hm_res50_8xb64-210e_coco-256x192.py work_dirs/td-hm_res50_8xb64-210e_coco-256x192/best_coco_AP_epoch_*.pth
# Cost: 210 epochs x 150k person instances at batch 512 = ~62k iterations on 8 GPUs.
# Data: data/coco/{annotations/person_keypoints_{train,val}2017.json, train2017/, val2017/,
#   person_detection_results/COCO_val2017_detections_AP_H_56_person.json}.
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py']
custom_imports = dict(imports=['transfer.mm.mmpose'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/resnet50_backbone.pth'  # tools/train.py: --backbone PATH; upstream tools: --cfg-options model.backbone.init_cfg.checkpoint=PATH
model = dict(
    backbone=dict(type='DarResNet', init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint)))
