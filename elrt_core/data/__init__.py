"""CIFAR data: verified sources, class-balanced subsets, and on-device batching/augmentation."""

from .batches import BatchLoader, normalize, random_crop_flip
from .sources import DATASETS, DataNotFoundError, DataSet, check, fetch, load, locate
from .subset import VALIDATION_SEED, class_balanced_subset, train_val_split

__all__ = [
    "DATASETS",
    "DataSet",
    "DataNotFoundError",
    "load",
    "check",
    "locate",
    "fetch",
    "class_balanced_subset",
    "train_val_split",
    "VALIDATION_SEED",
    "BatchLoader",
    "normalize",
    "random_crop_flip",
]
