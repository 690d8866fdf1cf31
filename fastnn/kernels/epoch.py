"""A whole epoch of mini-batch training of a stack of dense layers, in one compiled call.

For a small network a training step is a few tens of microseconds of arithmetic, and
Python's own bookkeeping around the kernels (``Sequential._train_step``: the layer
calls, the workspace lookups, the optimizer's scalars) costs about as much again.
``fit_epoch_jit`` runs the epoch's full batches inside numba instead, making for
each batch exactly the kernel calls the Python loop makes, in the same order:

    gather the batch                 X[order[b*bs:(b+1)*bs]]
    Z[l] = g(A[l-1] W[l]^T + b[l])   dense_forward_jit, layer by layer
    J, dZ[L]                         the loss kernel (+ the L1/L2 penalty)
    dZ[l], dW[l], db[l], dA[l-1]     dense_backward_jit, layer by layer
    keep theta                       the snapshot a diverging step rolls back to
    check g finite (and its norm)    max_exponent / sumsq, as Optimizer.step does
    theta := update(theta, g)        the optimizer's fused kernel, that step's scalars
    count correct predictions        the loss's count kernel

so it gives the same bits as the Python loop (tests/test_epoch.py). It has no loop
or vec form of its own: its loop form is ``Sequential._fit_epoch`` itself, which
makes the same calls one at a time from Python.
"""

import math

import numpy as np
from numba.extending import overload
from numba.np.unsafe.ndarray import to_fixed_tuple

from .._config import jit_bound
from .dense import dense_backward_jit, dense_forward_jit
from .losses import COUNT_KERNELS, LOSS_KERNELS
from .optim import (
    F32_EXPONENT,
    OPTIMIZER_KERNELS,
    clip_coefficient,
    max_exponent_jit,
    penalty_jit,
    sumsq_jit,
)

#: ``check`` codes: what is checked before each update.
CHECK_NONE, CHECK_EXPONENT, CHECK_SUMSQ = 0, 1, 2
#: ``status`` codes returned by :func:`fit_epoch_jit`.
DONE, LOSS_NONFINITE, GRAD_NONFINITE = 0, 1, 2


def row_scalars(row, like):
    """The entries of ``row`` as a tuple as long as ``like``."""
    return tuple(row)


@overload(row_scalars)
def _row_scalars(row, like):
    # numba needs a tuple's length at compile time: it is the length of ``like``'s type
    n = len(like)

    def impl(row, like):
        return to_fixed_tuple(row, n)

    return impl


# The loss, count and optimizer kernels fit_epoch_loop calls: bound to real kernels in
# each compilation (fit_epoch_jit), so that each has its own disk cache entry.
loss_kernel = count_kernel = update = None


def fit_epoch_loop(X, T, order, xb, tb, Ws, Bs, dWs, dBs, As, dZs, dXs, acts, alphas, dout,
                   classify, starts, stops, l1, l2, param, grad, gbits, state, rows, like,
                   check, stop_nonfinite, clip_norm, saved):
    """The epoch's ``len(order) // len(xb)`` full batches, each one step of training.

    ``Ws``... ``dXs`` are the layers' tuples of parameters, gradients and workspaces
    (``dXs[0]`` has no rows: the first layer's input gradient is not needed),
    ``acts``/``alphas`` their activation codes and slopes, ``dout`` the loss gradient,
    ``classify`` whether ``count_kernel`` counts. ``loss_kernel``, ``count_kernel`` and
    ``update`` are those :func:`fit_epoch_jit` binds.
    ``update(param, grad, *state, *rows[s])`` is step ``s``'s optimizer kernel call: row
    ``s`` holds its ``gscale`` (the sign of ``maximize``), ``clip`` and scalars, in the
    parameters' dtype; ``like`` is a tuple as long as a row. ``check`` says how the
    gradient is checked (``CHECK_*``), ``stop_nonfinite`` whether a non-finite one ends
    the epoch, ``clip_norm > 0`` that ``gscale`` is scaled by ``clip_coefficient`` of
    its norm. ``saved`` receives
    ``param`` before each update. ``l1``/``l2`` are already divided by the batch size.

    Returns ``(total, correct, steps, saved_at, status, value)``: the sum of
    ``loss * batch size`` and the correct count over the ``steps`` steps taken, the
    step whose parameters ``saved`` holds (-1: none), ``DONE`` or the reason the epoch
    stopped at step ``steps``, and that step's loss.
    """
    bs = xb.shape[0]
    n_layers = len(Ws)
    total = 0.0
    correct = 0
    saved_at = -1
    for s in range(order.shape[0] // bs):
        for r in range(bs):
            j = order[s * bs + r]
            for c in range(X.shape[1]):
                xb[r, c] = X[j, c]
            tb[r] = T[j]
        for layer in range(n_layers):
            dense_forward_jit(xb if layer == 0 else As[layer - 1], Ws[layer], Bs[layer],
                              acts[layer], alphas[layer], As[layer])
        z = As[n_layers - 1]
        value = loss_kernel(z, tb, dout)
        for layer in range(n_layers - 1, -1, -1):
            dense_backward_jit(xb if layer == 0 else As[layer - 1], Ws[layer], As[layer],
                               dout if layer == n_layers - 1 else dXs[layer + 1],
                               acts[layer], alphas[layer], dZs[layer], dWs[layer],
                               dBs[layer], dXs[layer])
        if l1 != 0.0 or l2 != 0.0:
            value += penalty_jit(param, grad, starts, stops, l1, l2)
        if not math.isfinite(value):
            return total, correct, s, saved_at, LOSS_NONFINITE, value
        saved[:] = param
        saved_at = s
        if check == CHECK_EXPONENT:
            if max_exponent_jit(gbits, F32_EXPONENT) == F32_EXPONENT and stop_nonfinite:
                return total, correct, s, saved_at, GRAD_NONFINITE, value
        elif check == CHECK_SUMSQ:
            sumsq = sumsq_jit(grad)
            if not math.isfinite(sumsq) and stop_nonfinite:
                return total, correct, s, saved_at, GRAD_NONFINITE, value
            if clip_norm > 0.0:
                # rows are in the parameters' dtype: the scaled gscale is rounded to it
                # on store, as Optimizer.step's cast rounds it
                rows[s, 0] = rows[s, 0] * clip_coefficient(math.sqrt(sumsq), clip_norm)
        update(param, grad, *state, *row_scalars(rows[s], like))
        total += value * bs
        if classify:
            correct += count_kernel(z, tb)
    return total, correct, order.shape[0] // bs, saved_at, DONE, 0.0


_COMPILED = {}


def fit_epoch_jit(optimizer, loss, count):
    """:func:`fit_epoch_loop` compiled with the ``OPTIMIZER_KERNELS``, ``LOSS_KERNELS`` and
    ``COUNT_KERNELS`` of those names as ``update``, ``loss_kernel`` and ``count_kernel``
    (compiled on first call, cached on disk)."""
    key = (optimizer, loss, count)
    if key not in _COMPILED:
        _COMPILED[key] = jit_bound(fit_epoch_loop, "_".join(key),
                                   update=OPTIMIZER_KERNELS[optimizer]["jit"],
                                   loss_kernel=LOSS_KERNELS[loss]["jit"],
                                   count_kernel=COUNT_KERNELS[count]["jit"])
    return _COMPILED[key]
