"""OpenMMLab glue: what mmdet, mmseg and mmpose need to fine-tune our timm backbones.

:mod:`.compat` (fixes for the stack on current PyTorch / NumPy 2, applied when :mod:`transfer` is
imported; on the lite stack it first provides mmcv's ops from :mod:`.mmcv_lite_ops`),
:mod:`.checkpoint` (reading and verified loading of backbone weights), :mod:`.backbones`
(``VerifiedPretrainedMixin``, ``TimmFeatureBackbone``), :mod:`.mmdet` / :mod:`.mmseg` / :mod:`.mmpose`
(``DarResNet`` registered in each toolbox: the modules configs name in ``custom_imports``),
:mod:`.preflight` (checks and config edits before a Runner is built), :mod:`.metrics` (the
``metrics.json`` hook), :mod:`.cli` (``tools/train.py`` / ``tools/test.py`` for transfer configs),
:mod:`.reference` and :mod:`.doctor` (the upstream reference models; ``python -m transfer.mm.doctor``).
:mod:`.resume` (``RNGStateHook``: exact resume with randomness on; ``PreemptionHook``: SIGTERM/SIGUSR1 ->
checkpoint, exit 75; ``ResumableEpochBasedTrainLoop``: epoch-based recipes resume inside an epoch), :mod:`.ext_finder` (the ``mmcv._ext`` finder that ``tools/setup_env.py``'s ``.pth``
installs, so upstream tools find the lite ops; standard library only).

May import: torch, timm, mmengine, mmcv, the three toolboxes, :mod:`transfer.tasks` and
:mod:`dar_common.workdir` (the work-dir contract). Never :mod:`transfer.study` or :mod:`transfer.tinydata`.
"""
