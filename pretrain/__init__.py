"""Pre-training of timm backbones with non-i.i.d. sample selection (the methods: ``pretrain.methods``)."""
