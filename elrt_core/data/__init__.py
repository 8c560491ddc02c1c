"""CIFAR data: verified sources, class-balanced subsets, and on-device batching/augmentation."""

from .batches import BatchLoader, normalize, random_crop_flip
from .sources import DATASETS, DataNotFoundError, DataSet, check, fetch, load
from .subset import class_balanced_subset

__all__ = [
    "DATASETS",
    "DataSet",
    "DataNotFoundError",
    "load",
    "check",
    "fetch",
    "class_balanced_subset",
    "BatchLoader",
    "normalize",
    "random_crop_flip",
]
