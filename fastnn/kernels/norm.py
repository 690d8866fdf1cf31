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
gradient. Loop forms and their compilations agree to the bit.

Batch norm in training is the hot path, written for speed (256 x 1024 float32 forward
plus backward: 0.34 ms before, about 0.16 ms now, one thread, AMD machine; 0.23 to
0.25 ms on the Intel one). The statistics stay float64 two-pass sums, but are gathered
as partial sums of each group of ``ROWS`` rows in the data's dtype, four rows per
sweep, kept in ``coef`` and then added group after group into the float64
accumulators: float64 loads, conversions and adds per element cost twice float32's,
and the partials keep the float32 rounding to 16 terms (a column whose partials
overflowed float32 is summed again in float64). The elementwise passes (normalize,
input gradient) run in the data's dtype with per-feature constants rounded to it once
(``coef``), rows outer and features inner, every loop starting at 0 so that LLVM
vectorizes it; each element is read twice in the forward statistics, once to
normalize, twice in the backward. Layer norm and evaluation mode keep the float64
elementwise form.

Threads. The training kernels' JIT forms are :func:`~fastnn._config.jit_sized`: with
threads given (``fastnn.set_num_threads``) and from ``_config.PARALLEL_MIN`` elements,
their parallel compilations hand the groups of rows to numba's threads (each pass over
the rows is one parallel loop; the groups' sums are still added in group order, so
the bits do not depend on the thread count). Rows, not features: split by blocks of
features, two threads took 0.20 ms where one takes 0.23 (the forward no faster), and
narrow blocks slowed the serial kernel (128 features: 0.38 ms); by groups of rows each
thread streams its own contiguous half of every array, which fits its core's 2 MB L2
(alone, one thread runs 256 x 512 forward plus backward in 76 us, 256 x 1024 in 223:
three 1 MB arrays stream from L3), and the pair takes 0.113 to 0.115 ms.
"""

import math

import numpy as np
from numba import prange
from numba.extending import register_jitable

from .._config import jit, jit_sized
from . import forms


# ------------------------------------------------------------------ batch norm
#: Rows summed in the data's dtype before the partial sums join the float64
#: accumulators (float64 loads and adds per element cost twice float32's).
ROWS = 16


@register_jitable
def _column_sums(x, i0, i1, c, square, part):
    """part[j] = sum_{i0 <= i < i1} x[i, j], or with ``square`` the sum of
    (x[i, j] - c[j])^2, in x's dtype. Four rows per sweep: a quarter of the loads and
    stores of ``part``, which bound the one-row loop."""
    n = x.shape[1]
    for j in range(n):
        part[j] = 0.0
    i = i0
    while i + 4 <= i1:
        if square:
            for j in range(n):
                d0 = x[i, j] - c[j]
                d1 = x[i + 1, j] - c[j]
                d2 = x[i + 2, j] - c[j]
                d3 = x[i + 3, j] - c[j]
                part[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        else:
            for j in range(n):
                part[j] += (x[i, j] + x[i + 1, j]) + (x[i + 2, j] + x[i + 3, j])
        i += 4
    while i < i1:
        for j in range(n):
            d = x[i, j] - c[j] if square else x[i, j]
            part[j] += d * d if square else d
        i += 1


@register_jitable
def _column_dots(x, dy, i0, i1, c, sdy, sdyx):
    """sdy[j] = sum_i dy[i, j] and sdyx[j] = sum_i dy[i, j] (x[i, j] - c[j]) over
    i0 <= i < i1, in x's dtype, four rows per sweep."""
    n = x.shape[1]
    for j in range(n):
        sdy[j] = 0.0
        sdyx[j] = 0.0
    i = i0
    while i + 4 <= i1:
        for j in range(n):
            d0, d1, d2, d3 = dy[i, j], dy[i + 1, j], dy[i + 2, j], dy[i + 3, j]
            sdy[j] += (d0 + d1) + (d2 + d3)
            sdyx[j] += ((d0 * (x[i, j] - c[j]) + d1 * (x[i + 1, j] - c[j]))
                        + (d2 * (x[i + 2, j] - c[j]) + d3 * (x[i + 3, j] - c[j])))
        i += 4
    while i < i1:
        for j in range(n):
            sdy[j] += dy[i, j]
            sdyx[j] += dy[i, j] * (x[i, j] - c[j])
        i += 1


@register_jitable
def _groups(m):
    """Groups of ``ROWS`` rows in a batch of ``m`` (the last may be shorter)."""
    return (m + ROWS - 1) // ROWS


@register_jitable
def _group_rows(g, m):
    """Rows ``[i0, i1)`` of group ``g`` of a batch of ``m``."""
    return g * ROWS, min(g * ROWS + ROWS, m)


@register_jitable
def coef_rows_forward(m):
    """Rows of the batch-norm forward's ``coef`` scratch for a batch of ``m``: two
    per-feature constants, then each group's column sums."""
    return 2 + _groups(m)


@register_jitable
def coef_rows_backward(m):
    """Rows of the batch-norm backward's ``coef`` scratch for a batch of ``m``: four
    per-feature constants, then each group's two column sums."""
    return 4 + 2 * _groups(m)


@register_jitable
def _add_groups(parts, acc):
    """acc[j] = sum_g parts[g, j] in float64, group after group (the same order whatever
    thread computed which group's sums)."""
    for j in range(acc.shape[0]):
        acc[j] = 0.0
    for g in range(parts.shape[0]):
        row = parts[g]
        for j in range(acc.shape[0]):
            acc[j] += np.float64(row[j])


@register_jitable
def _overflowed(v):
    """True when a float64 sum gathered from partials in the data's dtype is not finite.
    float32 partials overflow (past 3.4e38) where float64 sums do not: such a column is
    summed again in float64 (a pass down the column, only then), so that a diverging
    float32 run fails as it would with float64 sums (a non-finite loss, not a gradient
    overflowed inside batch norm)."""
    return not math.isfinite(v)


@register_jitable
def _affine_columns(x, gamma, beta, mean, invstd, out):
    """out = gamma * (Z - mu) / sigma + beta, statistics per column (feature)."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = (np.float64(gamma[j]) * ((np.float64(x[i, j]) - mean[j]) * invstd[j])
                         + np.float64(beta[j]))


def batchnorm_forward_train_loop(x, gamma, beta, momentum, eps, running_mean, running_var,
                                 mean, invstd, out, coef=None):
    """Normalize with the batch's mean and biased variance; update the running estimates.

    ``running = (1 - momentum) running + momentum batch`` with the unbiased variance
    ``m/(m-1) sigma^2`` in ``running_var`` (PyTorch's ``BatchNorm1d``). A batch of one
    sample has no variance estimate: its output is ``beta`` and the running estimates
    stay as they are. ``coef``, a scratch array of ``x``'s dtype with
    ``coef_rows_forward(m)`` rows and ``n`` columns, is allocated when not given.
    """
    m, n = x.shape
    groups = _groups(m)
    if coef is None:
        coef = np.empty((coef_rows_forward(m), n), x.dtype)
    elif coef.shape[0] < coef_rows_forward(m) or coef.shape[1] != n:
        raise ValueError("coef: expected a scratch array of coef_rows_forward(m) rows "
                         "and n columns")
    ct, kt, parts = coef[0], coef[1], coef[2:2 + groups]
    for g in prange(groups):  # each group of ROWS rows: its column sums
        _column_sums(x, *_group_rows(g, m), kt, False, parts[g])
    _add_groups(parts, mean)
    for j in range(n):
        if _overflowed(mean[j]):
            mean[j] = 0.0
            for i in range(m):
                mean[j] += np.float64(x[i, j])
        mean[j] = mean[j] / m
        ct[j] = mean[j]
    for g in prange(groups):  # second pass: squared deviations from the mean
        _column_sums(x, *_group_rows(g, m), ct, True, parts[g])
    _add_groups(parts, invstd)  # the sum of squared deviations for now
    for j in range(n):
        if _overflowed(invstd[j]):
            invstd[j] = 0.0
            for i in range(m):
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
        kt[j] = np.float64(gamma[j]) * invstd[j]
    for g in prange(groups):
        for i in range(*_group_rows(g, m)):
            xr, orow = x[i], out[i]
            for j in range(n):
                orow[j] = (xr[j] - ct[j]) * kt[j] + beta[j]


def batchnorm_forward_train_vec(x, gamma, beta, momentum, eps, running_mean, running_var,
                                mean, invstd, out, coef=None):
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
    dt = x.dtype.type
    np.add((x - mean.astype(dt)) * (gamma * invstd).astype(dt), beta, out=out)


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
                            dgamma, dbeta, dx, coef=None):
    """dgamma, dbeta and dZ = gamma/sigma (dZ~ - mean_i dZ~ - Z_norm mean_i(dZ~ Z_norm)).

    With ``batch_stats`` False (statistics taken as constants: evaluation mode) the
    two mean terms drop: ``dZ = gamma/sigma dZ~``. ``coef``, a scratch array of ``x``'s
    dtype with ``coef_rows_backward(m)`` rows and ``n`` columns, is allocated when not
    given.
    """
    m, n = x.shape
    groups = _groups(m)
    if coef is None:
        coef = np.empty((coef_rows_backward(m), n), x.dtype)
    elif coef.shape[0] < coef_rows_backward(m) or coef.shape[1] != n:
        raise ValueError("coef: expected a scratch array of coef_rows_backward(m) rows "
                         "and n columns")
    ct, pt, qt, rt = coef[0], coef[1], coef[2], coef[3]
    sdy, sdyx = coef[4:4 + groups], coef[4 + groups:4 + 2 * groups]
    for j in range(n):
        ct[j] = mean[j]
    for g in prange(groups):  # each group of ROWS rows: sum dZ~ and dZ~ (Z - mu)
        _column_dots(x, dy, *_group_rows(g, m), ct, sdy[g], sdyx[g])
    _add_groups(sdy, acc_dy)
    _add_groups(sdyx, acc_dyx)  # sum_i dZ~ (Z - mu) for now
    for j in range(n):
        if _overflowed(acc_dy[j]) or _overflowed(acc_dyx[j]):
            acc_dy[j] = 0.0
            acc_dyx[j] = 0.0
            for i in range(m):
                d = np.float64(dy[i, j])
                acc_dy[j] += d
                acc_dyx[j] += d * (np.float64(x[i, j]) - mean[j])
        acc_dyx[j] = acc_dyx[j] * invstd[j]
        dgamma[j] = acc_dyx[j]
        dbeta[j] = acc_dy[j]
        # dZ = ((dZ~ - s) - (Z - mu) q) p with p = gamma/sigma, s = mean(dZ~) and
        # q = mean(dZ~ Z_norm)/sigma: constants per feature, so the second pass is a short
        # chain per element in the data's dtype (dZ~ - s first, so that a batch of one
        # gives exactly 0); (Z - mu) q = Z_norm mean(dZ~ Z_norm) stays within |dZ~| m
        pt[j] = np.float64(gamma[j]) * invstd[j]
        if batch_stats:
            qt[j] = acc_dyx[j] / m * invstd[j]
            rt[j] = acc_dy[j] / m
        else:
            qt[j] = 0.0
            rt[j] = 0.0
    if dx.shape[0] > 0:
        for g in prange(groups):
            for i in range(*_group_rows(g, m)):
                xr, dr, dxr = x[i], dy[i], dx[i]
                for j in range(n):
                    dxr[j] = ((dr[j] - rt[j]) - (xr[j] - ct[j]) * qt[j]) * pt[j]


def batchnorm_backward_vec(x, dy, gamma, mean, invstd, batch_stats, acc_dy, acc_dyx,
                           dgamma, dbeta, dx, coef=None):
    """dgamma, dbeta and dZ = gamma/sigma (dZ~ - mean_i dZ~ - Z_norm mean_i(dZ~ Z_norm))."""
    m = x.shape[0]
    dy64 = dy.astype(np.float64)
    np.sum(dy64, axis=0, out=acc_dy)
    np.einsum("ij,ij->j", dy64, x.astype(np.float64) - mean, out=acc_dyx)
    acc_dyx *= invstd
    dgamma[...] = acc_dyx
    dbeta[...] = acc_dy
    if dx.shape[0] > 0:
        dt = x.dtype.type
        p = gamma * invstd
        q = acc_dyx / m * invstd if batch_stats else np.zeros_like(p)
        s = acc_dy / m if batch_stats else np.zeros_like(p)
        dx[...] = ((dy - s.astype(dt)) - (x - mean.astype(dt)) * q.astype(dt)) * p.astype(dt)


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
batchnorm_forward_train_jit = jit_sized(batchnorm_forward_train_loop)
batchnorm_forward_eval_jit = jit(batchnorm_forward_eval_loop)
batchnorm_backward_jit = jit_sized(batchnorm_backward_loop)
layernorm_forward_jit = jit(layernorm_forward_loop)
layernorm_backward_jit = jit(layernorm_backward_loop)


BATCHNORM_FORWARD_TRAIN = forms(globals(), "batchnorm_forward_train")
BATCHNORM_FORWARD_EVAL = forms(globals(), "batchnorm_forward_eval")
BATCHNORM_BACKWARD = forms(globals(), "batchnorm_backward")
LAYERNORM_FORWARD = forms(globals(), "layernorm_forward")
LAYERNORM_BACKWARD = forms(globals(), "layernorm_backward")
