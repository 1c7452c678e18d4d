"""Transfer probes of a frozen backbone during and after pre-training (kNN top-1, dense linear mIoU)."""
from .dense import DenseSettings
from .dense_data import DenseSet, ProbeDataError, cityscapes_folder
from .knn import KnnSettings
from .runner import TASKS, Prober

__all__ = ["TASKS", "DenseSet", "DenseSettings", "KnnSettings", "ProbeDataError", "Prober",
           "cityscapes_folder"]
