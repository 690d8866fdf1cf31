"""The dense (fully connected) layer, forward and backward, in three forms.

Samples are rows: ``X`` is ``(m, n_in)``, ``W`` is ``(n_out, n_in)`` (the lecture's
``W[l]`` and PyTorch's ``Linear.weight``), ``b`` is ``(n_out,)``. The lecture
writes samples as columns, ``Z[l] = W[l] A[l-1] + b[l]``; with rows this is its
transpose, ``Z = X W^T + b``.

Forward ``(x, w, b, act, alpha, out)`` computes ``A = g(X W^T + b)`` for the
activation code ``act`` (``activations.CODES``). Backward
``(x, w, a, da, act, alpha, dz, dw, db, dx)`` computes::

    dZ = dA * g'(Z)        dW = dZ^T X        db = sum_i dZ_i        dX = dZ W

The ``1/m`` of the lecture's ``dW = 1/m dZ A^T`` is already in the loss gradient
(``losses.py``), as in PyTorch, so that a layer does not need to know the batch.
``dx`` with no rows (``np.empty((0, 0))``) skips the input gradient, which the first
layer never needs. ``dz`` may alias ``da``.

The loop forms are the textbook triple loop. ``dense_*_loop_jit`` compile exactly
that loop (the lesson: the same loop, compiled); the ``*_jit`` forms the model uses
call BLAS through ``np.dot`` inside numba and fuse the bias and the activation (or
its derivative) around the product, which is where BLAS wins.
"""

import numpy as np
from numba import njit
from numba.extending import register_jitable

from .._config import JIT, jit
from . import forms
from .activations import (
    ACTIVATIONS,
    CODES,
    DERIVATIVES,
    activation_backward_loop,
    activation_forward_loop,
)

_NAMES = {code: name for name, code in CODES.items()}


def dense_forward_loop(x, w, b, act, alpha, out):
    """A = g(X W^T + b)."""
    for i in range(x.shape[0]):
        for o in range(w.shape[0]):
            acc = np.float64(b[o])
            for k in range(x.shape[1]):
                acc += np.float64(x[i, k]) * np.float64(w[o, k])
            out[i, o] = acc
    activation_forward_loop(act, out, alpha, out)


def dense_forward_vec(x, w, b, act, alpha, out):
    """A = g(X W^T + b)."""
    np.dot(x, w.T, out=out)
    out += b
    ACTIVATIONS[_NAMES[act]]["vec"](out, alpha, out)


@register_jitable
def dense_forward_into(x, w, b, act, alpha, z, out):
    """Z = X W^T + b in ``z`` (contiguous: BLAS writes it), A = g(Z) in ``out`` (``z``
    itself, or any view of the same shape: fit's split epoch writes a share of a layer's
    output units into its columns)."""
    np.dot(x, w.T, z)
    bias_activation(z, b, act, alpha, out)


@register_jitable
def dense_forward_t(x, wt, b, act, alpha, out):
    """A = g(X W^T + b) given ``wt``, a contiguous copy of W^T: the product as BLAS's
    X Y with both in row order, which OpenBLAS's small-matrix kernels (up to 10^6
    multiply-adds) run faster than X W^T: float32, one thread, rows x 100 x 100, 16
    rows 3.0 us against 6.2, 50 rows 9.0 against 13.3, 100 rows 17.8 against 23.2;
    above 10^6 (128 rows, 64 x 128 x 128) the two take the same time. The same sums,
    not the same rounding: fit's split epoch uses it; its one-part epoch keeps the
    Python loop's bits."""
    np.dot(x, wt, out)
    bias_activation(out, b, act, alpha, out)


@register_jitable
def bias_activation(z, b, act, alpha, out):
    """Z += b in ``z``, then A = g(Z) in ``out`` (``z`` itself or a view of its shape)."""
    for i in range(z.shape[0]):
        for o in range(z.shape[1]):
            z[i, o] += b[o]
    if out.ctypes.data == z.ctypes.data:
        # in place: one array, so that LLVM sees one pointer. Given two that alias, its
        # vectorized loop's overlap check fails at run time and the scalar loop runs
        # (a 100 x 100 ReLU layer: 3 us more than the product's 18 us)
        activation_forward_loop(act, z, alpha, z)
    else:
        activation_forward_loop(act, z, alpha, out)


@njit(**JIT)
def dense_forward_jit(x, w, b, act, alpha, out):
    """A = g(X W^T + b): BLAS product, then bias and activation in one pass each."""
    dense_forward_into(x, w, b, act, alpha, out, out)


def dense_backward_loop(x, w, a, da, act, alpha, dz, dw, db, dx):
    """dZ = dA * g'(Z); dW = dZ^T X; db = sum_i dZ; dX = dZ W."""
    activation_backward_loop(act, a, da, alpha, dz)
    for o in range(w.shape[0]):
        acc_b = 0.0
        for i in range(x.shape[0]):
            acc_b += np.float64(dz[i, o])
        db[o] = acc_b
        for k in range(w.shape[1]):
            acc = 0.0
            for i in range(x.shape[0]):
                acc += np.float64(dz[i, o]) * np.float64(x[i, k])
            dw[o, k] = acc
    if dx.shape[0] > 0:
        for i in range(x.shape[0]):
            for k in range(w.shape[1]):
                acc = 0.0
                for o in range(w.shape[0]):
                    acc += np.float64(dz[i, o]) * np.float64(w[o, k])
                dx[i, k] = acc


def dense_backward_vec(x, w, a, da, act, alpha, dz, dw, db, dx):
    """dZ = dA * g'(Z); dW = dZ^T X; db = sum_i dZ; dX = dZ W."""
    DERIVATIVES[_NAMES[act]]["vec"](a, da, alpha, dz)
    np.dot(dz.T, x, out=dw)
    np.sum(dz, axis=0, out=db)
    if dx.shape[0] > 0:
        np.dot(dz, w, out=dx)


@register_jitable
def dense_backward_rows(w, a, da, act, alpha, dz, dx):
    """dZ = dA * g'(Z); dX = dZ W: the part of the backward pass each row does alone
    (fit's compiled epoch runs it on parts of a batch side by side)."""
    activation_backward_loop(act, a, da, alpha, dz)
    if dx.shape[0] > 0:
        np.dot(dz, w, dx)


@register_jitable
def dense_weight_grads(x, dz, dw, db):
    """dW = dZ^T X; db = sum_i dZ_i: the sums over the batch's rows."""
    np.dot(dz.T, x, dw)
    # db row by row in its own dtype, as BLAS sums dW: vectorized along the row (the
    # loop form's column sums in float64 are a dependent chain per column, 9x slower
    # at 100 x 100); float32 models round each partial sum to float32, as dW does.
    db[:] = 0.0
    for i in range(dz.shape[0]):
        for o in range(db.shape[0]):
            db[o] += dz[i, o]


@njit(**JIT)
def dense_backward_jit(x, w, a, da, act, alpha, dz, dw, db, dx):
    """dZ = dA * g'(Z) fused before two BLAS products: dX = dZ W, dW = dZ^T X."""
    dense_backward_rows(w, a, da, act, alpha, dz, dx)
    dense_weight_grads(x, dz, dw, db)


# The textbook loops, compiled as they are: no BLAS (the lesson's middle column).
dense_forward_loop_jit = jit(dense_forward_loop)
dense_backward_loop_jit = jit(dense_backward_loop)

DENSE_FORWARD = forms(globals(), "dense_forward")
DENSE_BACKWARD = forms(globals(), "dense_backward")
