"""Losses on the network's output Z (logits), with their gradient dZ, in three forms.

Each kernel returns the mean loss over the ``m`` samples of the batch and writes
``dZ = dJ/dZ`` into ``grad``, the ``1/m`` of ``J = 1/m sum_i L(a_i, y_i)`` included.
The activation of the output (sigmoid, softmax) is fused into the loss, which is
both the stable way to compute it and the lecture's shortcut ``dZ = A - Y``.

Loop forms load elements as float64, accumulate in float64 and round once on
store, so the loop and its JIT compilation agree to the bit (fastmath off).
"""

import math

import numpy as np
from numba.extending import register_jitable

from .._config import jit
from . import forms
from .activations import row_max_sumexp


# ------------------------------------------------------- softmax cross-entropy
def softmax_cross_entropy_loop(z, y, grad):
    """J = 1/m sum_i (logsumexp(Z_i) - Z_i,y_i); dZ = (softmax(Z) - onehot(Y)) / m."""
    m = z.shape[0]
    total = 0.0
    for i in range(m):
        mx, s = row_max_sumexp(z, i, grad)  # grad[i, j] := exp(Z_ij - max)
        total += mx + math.log(s) - np.float64(z[i, y[i]])
        for j in range(z.shape[1]):
            p = np.float64(grad[i, j]) / s
            if j == y[i]:
                p -= 1.0
            grad[i, j] = p / m
    return total / m


def softmax_cross_entropy_vec(z, y, grad):
    """J = 1/m sum_i (logsumexp(Z_i) - Z_i,y_i); dZ = (softmax(Z) - onehot(Y)) / m."""
    m = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    logp = shifted - lse
    loss = -float(np.sum(logp[np.arange(m), y], dtype=np.float64)) / m
    np.exp(logp, out=grad)
    grad[np.arange(m), y] -= 1
    grad /= m
    return loss


def softmax_cross_entropy_soft_loop(z, t, grad):
    """Targets as rows of probabilities (one-hot or soft): J = 1/m sum_ij T_ij (lse_i - Z_ij);
    dZ = (softmax(Z) sum_j T_ij - T) / m."""
    m = z.shape[0]
    total = 0.0
    for i in range(m):
        mx, s = row_max_sumexp(z, i, grad)  # grad[i, j] := exp(Z_ij - max)
        lse = mx + math.log(s)
        tsum = 0.0
        for j in range(z.shape[1]):
            tij = np.float64(t[i, j])
            tsum += tij
            total += tij * (lse - np.float64(z[i, j]))
        for j in range(z.shape[1]):
            grad[i, j] = (np.float64(grad[i, j]) / s * tsum - np.float64(t[i, j])) / m
    return total / m


def softmax_cross_entropy_soft_vec(z, t, grad):
    """Targets as rows of probabilities (one-hot or soft): J = 1/m sum_ij T_ij (lse_i - Z_ij);
    dZ = (softmax(Z) sum_j T_ij - T) / m."""
    m = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(np.sum(t * logp, dtype=np.float64)) / m
    np.multiply(np.exp(logp), t.sum(axis=1, keepdims=True), out=grad)
    grad -= t
    grad /= m
    return loss


# -------------------------------------------------------- binary cross-entropy
def binary_cross_entropy_loop(z, y, grad):
    """L = -y log(a) - (1 - y) log(1 - a) with a = sigmoid(z), averaged over all
    elements, computed as max(z, 0) - z y + log(1 + exp(-|z|)); dZ = (A - Y) / size."""
    size = z.shape[0] * z.shape[1]
    total = 0.0
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = np.float64(z[i, j])
            t = np.float64(y[i, j])
            e = math.exp(-abs(v))
            total += max(v, 0.0) - v * t + math.log1p(e)
            a = 1.0 / (1.0 + e) if v >= 0.0 else e / (1.0 + e)
            grad[i, j] = (a - t) / size
    return total / size


def binary_cross_entropy_vec(z, y, grad):
    """L = -y log(a) - (1 - y) log(1 - a) with a = sigmoid(z), averaged over all
    elements, computed as max(z, 0) - z y + log(1 + exp(-|z|)); dZ = (A - Y) / size."""
    size = z.size
    e = np.exp(-np.abs(z))
    loss = float(np.sum(np.maximum(z, 0) - z * y + np.log1p(e), dtype=np.float64)) / size
    a = np.where(z >= 0, 1, e) / (1 + e)
    np.subtract(a, y, out=grad)
    grad /= size
    return loss


# ------------------------------------------------------------- squared error
@register_jitable
def squared_error_loop(z, y, scale, grad):
    """J = scale * sum (Z - Y)^2; dZ = 2 scale (Z - Y). ``mse``: scale = 1/(m k);
    the lecture's quadratic cost C = 1/(2n) sum ||y - a||^2: scale = 1/(2m)."""
    total = 0.0
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            d = np.float64(z[i, j]) - np.float64(y[i, j])
            total += d * d
            grad[i, j] = 2.0 * scale * d
    return scale * total


def squared_error_vec(z, y, scale, grad):
    """J = scale * sum (Z - Y)^2; dZ = 2 scale (Z - Y). ``mse``: scale = 1/(m k);
    the lecture's quadratic cost C = 1/(2n) sum ||y - a||^2: scale = 1/(2m)."""
    np.subtract(z, y, out=grad)
    loss = scale * float(np.sum(np.square(grad), dtype=np.float64))
    grad *= 2 * scale
    return loss


def mse_loop(z, y, grad):
    """J = 1/(m k) sum (Z - Y)^2 (PyTorch's MSELoss); dZ = 2 (Z - Y) / (m k)."""
    return squared_error_loop(z, y, 1.0 / (z.shape[0] * z.shape[1]), grad)


def mse_vec(z, y, grad):
    """J = 1/(m k) sum (Z - Y)^2 (PyTorch's MSELoss); dZ = 2 (Z - Y) / (m k)."""
    return squared_error_vec(z, y, 1.0 / (z.shape[0] * z.shape[1]), grad)


def quadratic_loop(z, y, grad):
    """The lecture's C = 1/(2m) sum_x ||y(x) - a||^2; dZ = (Z - Y) / m."""
    return squared_error_loop(z, y, 0.5 / z.shape[0], grad)


def quadratic_vec(z, y, grad):
    """The lecture's C = 1/(2m) sum_x ||y(x) - a||^2; dZ = (Z - Y) / m."""
    return squared_error_vec(z, y, 0.5 / z.shape[0], grad)


# ------------------------------------------------------------------- accuracy
def count_correct_loop(z, y):
    """Number of rows whose largest logit is at the label: sum_i [argmax_j Z_ij = y_i]
    (ties go to the first maximum, as np.argmax); counts without allocating."""
    count = 0
    for i in range(z.shape[0]):
        best = 0
        for j in range(1, z.shape[1]):
            if z[i, j] > z[i, best]:
                best = j
        if best == y[i]:
            count += 1
    return count


def count_correct_vec(z, y):
    """Number of rows whose largest logit is at the label: sum_i [argmax_j Z_ij = y_i]."""
    return int(np.count_nonzero(np.argmax(z, axis=1) == y))


def count_correct_binary_loop(z, y):
    """Number of outputs on the right side of 0: sum_ij [(Z_ij > 0) = (Y_ij > 1/2)]."""
    count = 0
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            if (z[i, j] > 0.0) == (y[i, j] > 0.5):
                count += 1
    return count


def count_correct_binary_vec(z, y):
    """Number of outputs on the right side of 0: sum_ij [(Z_ij > 0) = (Y_ij > 1/2)]."""
    return int(np.count_nonzero((z > 0) == (y > 0.5)))


count_correct_jit = jit(count_correct_loop)
count_correct_binary_jit = jit(count_correct_binary_loop)
softmax_cross_entropy_jit = jit(softmax_cross_entropy_loop)
softmax_cross_entropy_soft_jit = jit(softmax_cross_entropy_soft_loop)
binary_cross_entropy_jit = jit(binary_cross_entropy_loop)
squared_error_jit = jit(squared_error_loop)
mse_jit = jit(mse_loop)
quadratic_jit = jit(quadratic_loop)


#: kernel name -> {form -> kernel}
LOSS_KERNELS = {
    name: forms(globals(), name)
    for name in (
        "softmax_cross_entropy",
        "softmax_cross_entropy_soft",
        "binary_cross_entropy",
        "squared_error",
        "mse",
        "quadratic",
    )
}

#: kernel name -> {form -> kernel} for counting correct predictions (accuracy)
COUNT_KERNELS = {name: forms(globals(), name) for name in ("count_correct", "count_correct_binary")}
