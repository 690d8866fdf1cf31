"""Batch normalization and layer normalization, forward and backward, in three forms.

The lecture's four steps, per feature ``j`` over the ``m`` samples of the batch (batch
norm) or per sample over its ``n`` features (layer norm)::

    (1) mu = 1/m sum_i Z_i          (2) sigma^2 = 1/m sum_i (Z_i - mu)^2
    (3) Z_norm = (Z - mu) / sqrt(sigma^2 + eps)
    (4) Z~ = gamma * Z_norm + beta

(The lecture's slide drops the square in (2) and writes ``sigma^2 - eps`` in (3);
the equations above are the paper's and PyTorch's.) The variance is the biased one
(divided by ``m``), computed in two passes (the mean first, then the squared
deviations from it) in float64: it stays right for data far from zero, where the
one-pass ``E[Z^2] - E[Z]^2`` cancels catastrophically (shifted by 1e8, float64 loses
every digit of a unit variance that way).

Backward, with ``Z_norm`` recomputed from ``Z``, ``mu`` and ``1/sigma`` rather than
stored, and means taken over the normalized axis::

    dgamma = sum_i dZ~ * Z_norm        dbeta = sum_i dZ~
    dZ = gamma / sigma * (dZ~ - mean(dZ~) - Z_norm * mean(dZ~ * Z_norm))

Statistics ``mean`` and ``invstd = 1/sqrt(sigma^2 + eps)`` are float64 arrays the
caller preallocates (``(n,)`` for batch norm, ``(m,)`` for layer norm); the forward
fills them and the backward reads them. ``acc_dy`` and ``acc_dyx`` are float64
``(n,)`` scratch arrays for the column sums. ``dx`` with no rows skips the input
gradient. Loop forms load every element as float64 and round once on store, so the
loop and its compilation agree to the bit.
"""

import math

import numpy as np
from numba.extending import register_jitable

from .._config import jit


# ------------------------------------------------------------------ batch norm
@register_jitable
def _affine_columns(x, gamma, beta, mean, invstd, out):
    """out = gamma * (Z - mu) / sigma + beta, statistics per column (feature)."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = (np.float64(gamma[j]) * ((np.float64(x[i, j]) - mean[j]) * invstd[j])
                         + np.float64(beta[j]))


def batchnorm_forward_train_loop(x, gamma, beta, momentum, eps, running_mean, running_var,
                                 mean, invstd, out):
    """Normalize with the batch's mean and biased variance; update the running estimates.

    ``running = (1 - momentum) running + momentum batch`` with the unbiased variance
    ``m/(m-1) sigma^2`` in ``running_var`` (PyTorch's ``BatchNorm1d``). A batch of one
    sample has no variance estimate: its output is ``beta`` and the running estimates
    stay as they are.
    """
    m, n = x.shape
    for j in range(n):
        mean[j] = 0.0
        invstd[j] = 0.0
    for i in range(m):
        for j in range(n):
            mean[j] += np.float64(x[i, j])
    for j in range(n):
        mean[j] = mean[j] / m
    for i in range(m):  # invstd holds the sum of squared deviations for now
        for j in range(n):
            d = np.float64(x[i, j]) - mean[j]
            invstd[j] += d * d
    for j in range(n):
        ssd = invstd[j]
        if m > 1:
            running_mean[j] = ((1.0 - momentum) * np.float64(running_mean[j])
                               + momentum * mean[j])
            running_var[j] = ((1.0 - momentum) * np.float64(running_var[j])
                              + momentum * (ssd / (m - 1)))
        invstd[j] = 1.0 / math.sqrt(ssd / m + eps)
    _affine_columns(x, gamma, beta, mean, invstd, out)


def batchnorm_forward_train_vec(x, gamma, beta, momentum, eps, running_mean, running_var,
                                mean, invstd, out):
    """Normalize with the batch's mean and biased variance; update the running estimates."""
    m = x.shape[0]
    x64 = x.astype(np.float64)
    np.mean(x64, axis=0, out=mean)
    d = x64 - mean
    ssd = np.einsum("ij,ij->j", d, d)
    if m > 1:
        running_mean[...] = (1.0 - momentum) * running_mean.astype(np.float64) + momentum * mean
        running_var[...] = ((1.0 - momentum) * running_var.astype(np.float64)
                            + momentum * (ssd / (m - 1)))
    np.divide(1.0, np.sqrt(ssd / m + eps), out=invstd)
    np.add(gamma.astype(np.float64) * (d * invstd), beta, out=out, casting="unsafe")


def batchnorm_forward_eval_loop(x, gamma, beta, eps, running_mean, running_var, mean,
                                invstd, out):
    """Normalize with the running estimates (the lecture's population statistics)."""
    n = x.shape[1]
    for j in range(n):
        mean[j] = np.float64(running_mean[j])
        invstd[j] = 1.0 / math.sqrt(np.float64(running_var[j]) + eps)
    _affine_columns(x, gamma, beta, mean, invstd, out)


def batchnorm_forward_eval_vec(x, gamma, beta, eps, running_mean, running_var, mean,
                               invstd, out):
    """Normalize with the running estimates (the lecture's population statistics)."""
    mean[...] = running_mean
    np.divide(1.0, np.sqrt(running_var.astype(np.float64) + eps), out=invstd)
    np.add(gamma.astype(np.float64) * ((x.astype(np.float64) - mean) * invstd), beta, out=out,
           casting="unsafe")


def batchnorm_backward_loop(x, dy, gamma, mean, invstd, batch_stats, acc_dy, acc_dyx,
                            dgamma, dbeta, dx):
    """dgamma, dbeta and dZ = gamma/sigma (dZ~ - mean_i dZ~ - Z_norm mean_i(dZ~ Z_norm)).

    With ``batch_stats`` False (statistics taken as constants: evaluation mode) the
    two mean terms drop: ``dZ = gamma/sigma dZ~``.
    """
    m, n = x.shape
    for j in range(n):
        acc_dy[j] = 0.0
        acc_dyx[j] = 0.0
    for i in range(m):
        for j in range(n):
            g = np.float64(dy[i, j])
            acc_dy[j] += g
            acc_dyx[j] += g * ((np.float64(x[i, j]) - mean[j]) * invstd[j])
    for j in range(n):
        dgamma[j] = acc_dyx[j]
        dbeta[j] = acc_dy[j]
        if batch_stats:
            acc_dy[j] = acc_dy[j] / m
            acc_dyx[j] = acc_dyx[j] / m
        else:
            acc_dy[j] = 0.0
            acc_dyx[j] = 0.0
    if dx.shape[0] > 0:
        for i in range(m):
            for j in range(n):
                xn = (np.float64(x[i, j]) - mean[j]) * invstd[j]
                dx[i, j] = ((np.float64(dy[i, j]) - acc_dy[j] - xn * acc_dyx[j])
                            * (np.float64(gamma[j]) * invstd[j]))


def batchnorm_backward_vec(x, dy, gamma, mean, invstd, batch_stats, acc_dy, acc_dyx,
                           dgamma, dbeta, dx):
    """dgamma, dbeta and dZ = gamma/sigma (dZ~ - mean_i dZ~ - Z_norm mean_i(dZ~ Z_norm))."""
    m = x.shape[0]
    xn = (x.astype(np.float64) - mean) * invstd
    dy64 = dy.astype(np.float64)
    np.sum(dy64, axis=0, out=acc_dy)
    np.einsum("ij,ij->j", dy64, xn, out=acc_dyx)
    dgamma[...] = acc_dyx
    dbeta[...] = acc_dy
    if dx.shape[0] > 0:
        if batch_stats:
            dy64 = dy64 - acc_dy / m - xn * (acc_dyx / m)
        np.multiply(dy64, gamma.astype(np.float64) * invstd, out=dx, casting="unsafe")


# ------------------------------------------------------------------ layer norm
def layernorm_forward_loop(x, gamma, beta, eps, mean, invstd, out):
    """Normalize each sample (row) over its features, then gamma * Z_norm + beta."""
    m, n = x.shape
    for i in range(m):
        s = 0.0
        for j in range(n):
            s += np.float64(x[i, j])
        mu = s / n
        ssd = 0.0
        for j in range(n):
            d = np.float64(x[i, j]) - mu
            ssd += d * d
        r = 1.0 / math.sqrt(ssd / n + eps)
        mean[i] = mu
        invstd[i] = r
        for j in range(n):
            out[i, j] = (np.float64(gamma[j]) * ((np.float64(x[i, j]) - mu) * r)
                         + np.float64(beta[j]))


def layernorm_forward_vec(x, gamma, beta, eps, mean, invstd, out):
    """Normalize each sample (row) over its features, then gamma * Z_norm + beta."""
    x64 = x.astype(np.float64)
    np.mean(x64, axis=1, out=mean)
    d = x64 - mean[:, None]
    np.divide(1.0, np.sqrt(np.einsum("ij,ij->i", d, d) / x.shape[1] + eps), out=invstd)
    np.add(gamma.astype(np.float64) * (d * invstd[:, None]), beta, out=out, casting="unsafe")


def layernorm_backward_loop(x, dy, gamma, mean, invstd, acc_dy, acc_dyx, dgamma, dbeta, dx):
    """dgamma, dbeta and, per row, dZ = 1/sigma (g - mean_j g - Z_norm mean_j(g Z_norm)),
    g = gamma dZ~."""
    m, n = x.shape
    for j in range(n):
        acc_dy[j] = 0.0
        acc_dyx[j] = 0.0
    for i in range(m):
        mu = mean[i]
        r = invstd[i]
        a = 0.0
        b = 0.0
        for j in range(n):
            d = np.float64(dy[i, j])
            xn = (np.float64(x[i, j]) - mu) * r
            acc_dy[j] += d
            acc_dyx[j] += d * xn
            g = d * np.float64(gamma[j])
            a += g
            b += g * xn
        if dx.shape[0] > 0:
            a = a / n
            b = b / n
            for j in range(n):
                xn = (np.float64(x[i, j]) - mu) * r
                dx[i, j] = (np.float64(dy[i, j]) * np.float64(gamma[j]) - a - xn * b) * r
    for j in range(n):
        dgamma[j] = acc_dyx[j]
        dbeta[j] = acc_dy[j]


def layernorm_backward_vec(x, dy, gamma, mean, invstd, acc_dy, acc_dyx, dgamma, dbeta, dx):
    """dgamma, dbeta and, per row, dZ = 1/sigma (g - mean_j g - Z_norm mean_j(g Z_norm))."""
    xn = (x.astype(np.float64) - mean[:, None]) * invstd[:, None]
    dy64 = dy.astype(np.float64)
    np.sum(dy64, axis=0, out=acc_dy)
    np.einsum("ij,ij->j", dy64, xn, out=acc_dyx)
    dgamma[...] = acc_dyx
    dbeta[...] = acc_dy
    if dx.shape[0] > 0:
        g = dy64 * gamma.astype(np.float64)
        a = g.mean(axis=1, keepdims=True)
        b = np.mean(g * xn, axis=1, keepdims=True)
        np.multiply(g - a - xn * b, invstd[:, None], out=dx, casting="unsafe")


# ------------------------------------------------------------- compiled forms
batchnorm_forward_train_jit = jit(batchnorm_forward_train_loop)
batchnorm_forward_eval_jit = jit(batchnorm_forward_eval_loop)
batchnorm_backward_jit = jit(batchnorm_backward_loop)
layernorm_forward_jit = jit(layernorm_forward_loop)
layernorm_backward_jit = jit(layernorm_backward_loop)


def _table(name):
    g = globals()
    return {form: g[f"{name}_{form}"] for form in ("loop", "vec", "jit")}


BATCHNORM_FORWARD_TRAIN = _table("batchnorm_forward_train")
BATCHNORM_FORWARD_EVAL = _table("batchnorm_forward_eval")
BATCHNORM_BACKWARD = _table("batchnorm_backward")
LAYERNORM_FORWARD = _table("layernorm_forward")
LAYERNORM_BACKWARD = _table("layernorm_backward")
