"""`tinytorch.data.loader`, where the course keeps its data API: Dataset, TensorDataset, DataLoader, augmentations.

The datasets and the loader are the ones in `tinytorch.core.dataloader` (older course versions imported them
from there). The augmentations take one image, (C, H, W) or (H, W, C) or (H, W), as a Tensor or an ndarray,
and return the same kind; they draw from NumPy's global random state.
"""

import numpy as np

from ..core.dataloader import DataLoader, Dataset, TensorDataset
from ..core.tensor import Tensor


def _unwrap(x):
    return (x.data, True) if isinstance(x, Tensor) else (np.asarray(x), False)


class RandomHorizontalFlip:
    """Mirror the image left-right with probability p."""

    def __init__(self, p=0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Probability must be between 0 and 1, got {p}")
        self.p = p

    def __call__(self, x):
        if np.random.random() >= self.p:
            return x
        data, is_tensor = _unwrap(x)
        flipped = np.ascontiguousarray(data[..., ::-1])
        return Tensor(flipped) if is_tensor else flipped


class RandomCrop:
    """Pad the image with `padding` zeros on every side, then cut a random window of `size` (int or (h, w)).

    A 3-D image with at most 4 leading entries is taken as channels-first (C, H, W), otherwise as (H, W, C).
    """

    def __init__(self, size, padding=4):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = padding

    def __call__(self, x):
        data, is_tensor = _unwrap(x)
        height, width = self.size
        pad = self.padding
        if data.ndim == 2:
            padded = np.pad(data, pad)
            rows, cols = 0, 1
        elif data.ndim == 3 and data.shape[0] <= 4:
            padded = np.pad(data, ((0, 0), (pad, pad), (pad, pad)))
            rows, cols = 1, 2
        elif data.ndim == 3:
            padded = np.pad(data, ((pad, pad), (pad, pad), (0, 0)))
            rows, cols = 0, 1
        else:
            raise ValueError(f"Expected 2D or 3D input, got shape {data.shape}")
        top = np.random.randint(0, padded.shape[rows] - height + 1)
        left = np.random.randint(0, padded.shape[cols] - width + 1)
        index = [slice(None)] * data.ndim
        index[rows], index[cols] = slice(top, top + height), slice(left, left + width)
        cropped = np.ascontiguousarray(padded[tuple(index)])
        return Tensor(cropped) if is_tensor else cropped


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x


__all__ = ["Dataset", "TensorDataset", "DataLoader", "RandomHorizontalFlip", "RandomCrop", "Compose"]
