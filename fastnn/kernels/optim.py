"""Optimizer updates over a flat parameter buffer, in three forms.

Each kernel updates ``param`` in place from ``grad`` (1-D arrays of equal length,
usually the whole model's flat buffers) and its state arrays, with the learning
rate and other hyperparameters passed as scalars.
"""

import numpy as np

from .._config import jit


def sgd_loop(param, grad, lr):
    """theta := theta - alpha * dtheta."""
    for i in range(param.shape[0]):
        param[i] = np.float64(param[i]) - lr * np.float64(grad[i])


def sgd_vec(param, grad, lr):
    """theta := theta - alpha * dtheta."""
    param -= lr * grad


sgd_jit = jit(sgd_loop)

SGD_KERNELS = {"loop": sgd_loop, "vec": sgd_vec, "jit": sgd_jit}
