"""fastnn: neural networks trained on the CPU with Numba-JIT kernels.

Every equation of the lecture lives in ``fastnn.kernels`` in three forms (a plain
loop, vectorized NumPy, and the loop compiled by numba); this package re-exports the
public API built over them.
"""

from . import datasets, io, model_selection, optim, schedules
from ._config import set_num_threads
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, ReduceLROnPlateau
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
from .warmup import warmup
from .model_selection import (
    KFold,
    StratifiedKFold,
    cross_validate,
    diagnose,
    diagnose_model,
    epoch_curve,
    grid_search,
    learning_curve,
    train_test_split,
    train_val_test_split,
    validation_curve,
)

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
    "KFold",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "ModelCheckpoint",
    "ReLU",
    "ReduceLROnPlateau",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "StratifiedKFold",
    "Tanh",
    "cross_validate",
    "datasets",
    "diagnose",
    "diagnose_model",
    "epoch_curve",
    "get_loss",
    "gradcheck",
    "grid_search",
    "io",
    "load",
    "learning_curve",
    "model_selection",
    "numerical_gradient",
    "optim",
    "set_num_threads",
    "warmup",
    "schedules",
    "train_test_split",
    "train_val_test_split",
    "validation_curve",
]
