"""Compatibility fixes for the OpenMMLab stack on current PyTorch/NumPy (filled in by the stack work)."""
