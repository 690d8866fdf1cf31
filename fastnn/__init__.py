"""fastnn: neural networks trained on the CPU with Numba-JIT kernels.

Every equation of the lecture lives in ``fastnn.kernels`` in three forms (a plain
loop, vectorized NumPy, and the loop compiled by numba); this package re-exports the
public API built over them.
"""

from . import datasets, io, optim
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from .gradcheck import GradcheckResult, gradcheck, numerical_gradient
from .layers import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Identity,
    Layer,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .io import FastnnFormatError, load
from .losses import get_loss
from .model import Sequential

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "BatchNorm",
    "Callback",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "FastnnFormatError",
    "GradcheckResult",
    "History",
    "Identity",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "ModelCheckpoint",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "datasets",
    "get_loss",
    "gradcheck",
    "io",
    "load",
    "numerical_gradient",
    "optim",
]
