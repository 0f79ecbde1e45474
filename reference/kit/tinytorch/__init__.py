"""tinytorch: the course's from-scratch deep-learning library (the parts earlier modules built).

Student files import it as in the course, e.g. `from tinytorch.core.tensor import Tensor`.
"""

from .core.autograd import Function, enable_autograd, no_grad
from .core.tensor import Tensor

__version__ = "0.9.0"
__all__ = ["Tensor", "Function", "no_grad", "enable_autograd", "__version__"]
