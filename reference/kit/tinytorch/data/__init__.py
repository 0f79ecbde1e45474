"""Data loading (the course's module 08): datasets, the DataLoader and image augmentations."""

from .loader import Compose, DataLoader, Dataset, RandomCrop, RandomHorizontalFlip, TensorDataset

__all__ = ["Dataset", "TensorDataset", "DataLoader", "RandomHorizontalFlip", "RandomCrop", "Compose"]
