"""tinytorch: the course's from-scratch deep-learning library (the parts earlier modules built).

Student files import it as in the course, e.g. `from tinytorch.core.tensor import Tensor` or
`from tinytorch import Linear`. The course's package also re-exports Conv2d, MaxPool2d and AvgPool2d
from `tinytorch.core.spatial`, the module students write: here that module is the student's file
(the grader loads it as `tinytorch.core.spatial`), so those three names are looked up on first use.
"""

from .core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from .core.autograd import Function, enable_autograd, no_grad
from .core.layers import Dropout, Layer, Linear
from .core.losses import BinaryCrossEntropyLoss, CrossEntropyLoss, MSELoss
from .core.optimizers import SGD, Adam, AdamW
from .core.tensor import Tensor
from .core.training import CosineSchedule, Trainer, clip_grad_norm
from .data.loader import Compose, DataLoader, Dataset, RandomCrop, RandomHorizontalFlip, TensorDataset

__version__ = "0.1.0"
SPATIAL_NAMES = ("Conv2d", "MaxPool2d", "AvgPool2d")  # not in __all__: `import *` must work before they exist

__all__ = ["__version__", "Tensor", "Sigmoid", "ReLU", "Tanh", "GELU", "Softmax", "Layer", "Linear", "Dropout",
           "MSELoss", "CrossEntropyLoss", "BinaryCrossEntropyLoss", "SGD", "Adam", "AdamW", "Trainer",
           "CosineSchedule", "clip_grad_norm", "Dataset", "TensorDataset", "DataLoader", "RandomHorizontalFlip",
           "RandomCrop", "Compose", "Function", "no_grad", "enable_autograd"]


def __getattr__(name):
    if name in SPATIAL_NAMES:
        import importlib

        try:
            spatial = importlib.import_module(".core.spatial", __name__)
        except ImportError as error:
            raise AttributeError(f"tinytorch.{name} comes from tinytorch.core.spatial (your spatial.py), "
                                 f"which is not loaded: {error}") from error
        return getattr(spatial, name)
    raise AttributeError(f"module 'tinytorch' has no attribute {name!r}")
