"""Datasets and a mini-batch DataLoader (module 08's API)."""

import numpy as np

from .tensor import Tensor


class Dataset:
    """Anything with __len__ and __getitem__(i) returning a sample (e.g. an (image, label) pair)."""

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are rows of the given arrays or Tensors (all with the same first dimension)."""

    def __init__(self, *arrays):
        self.arrays = [a.data if isinstance(a, Tensor) else np.asarray(a) for a in arrays]
        if not self.arrays:
            raise ValueError("TensorDataset needs at least one array")
        lengths = {len(a) for a in self.arrays}
        if len(lengths) != 1:
            raise ValueError(f"all arrays must have the same first dimension; got lengths {sorted(lengths)}")

    @property
    def tensors(self):
        """The course's name: the dataset's columns as Tensors."""
        return tuple(Tensor(a) for a in self.arrays)

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(Tensor(a[index]) for a in self.arrays)


class DataLoader:
    """Iterates over a dataset in mini-batches of Tensors.

    Args:
        dataset: a Dataset (TensorDataset batches are sliced directly, without per-sample work).
        batch_size: samples per batch.
        shuffle: reshuffle the order at every pass.
        seed: seed of the shuffling (reproducible order); None uses NumPy's global state.
        drop_last: drop the final incomplete batch.
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, seed=None, drop_last=False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return self.rng.permutation(n) if self.rng is not None else np.random.permutation(n)

    def __iter__(self):
        order = self._order()
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            indices = order[start:start + self.batch_size]
            if isinstance(self.dataset, TensorDataset):
                if not self.shuffle:
                    indices = slice(start, start + len(indices))
                yield tuple(Tensor(a[indices]) for a in self.dataset.arrays)
            else:
                samples = [self.dataset[int(i)] for i in indices]
                yield _collate(samples)


def _collate(samples):
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(_stack([s[i] for s in samples]) for i in range(len(first)))
    return _stack(samples)


def _stack(items):
    return Tensor(np.stack([item.data if isinstance(item, Tensor) else np.asarray(item) for item in items]))
