"""fastnn: neural networks trained on the CPU with Numba-JIT kernels.

Every equation of the lecture lives in ``fastnn.kernels`` in three forms (a plain
loop, vectorized NumPy, and the loop compiled by numba); this package re-exports the
public API built over them.
"""

from . import datasets, optim
from .callbacks import Callback, History
from .gradcheck import GradcheckResult, gradcheck, numerical_gradient
from .layers import (
    Activation,
    Dense,
    Identity,
    Layer,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import get_loss
from .model import Sequential

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Callback",
    "Dense",
    "GradcheckResult",
    "History",
    "Identity",
    "Layer",
    "LeakyReLU",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "datasets",
    "get_loss",
    "gradcheck",
    "numerical_gradient",
    "optim",
]
