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

Given threads (``fastnn.set_num_threads(n)``, BLAS on one thread), its parallel
compilation splits each batch into ``n`` parts whose forward and backward passes run
side by side, and takes the mean of their gradients: the same to rounding.
"""

import math

import numpy as np
from numba import prange
from numba.extending import overload, register_jitable
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


@register_jitable
def _mean_of_parts(parts_grads, grads):
    """grads := the mean of the parts' gradients (each part's loss is a mean over its rows,
    so the batch's gradient is the mean of theirs)."""
    scale = 1.0 / parts_grads.shape[0]
    flat = grads.reshape(-1)
    for k in range(flat.shape[0]):
        flat[k] = 0.0
    for t in range(parts_grads.shape[0]):
        part = parts_grads[t].reshape(-1)
        for k in range(flat.shape[0]):
            flat[k] += part[k]
    for k in range(flat.shape[0]):
        flat[k] *= scale


def fit_epoch_loop(X, T, order, xb, tb, Ws, Bs, dWs, dBs, dWp, dBp, As, dZs, dXs, acts,
                   alphas, douts, values, counts, classify, starts, stops, l1, l2, param, grad,
                   gbits, state, rows, like, check, stop_nonfinite, clip_norm, saved):
    """The epoch's full batches of ``order``, each one step of training.

    A batch is gathered into ``xb``/``tb``, shaped ``(parts, rows, ...)``: its parts'
    forward and backward passes run side by side (``prange``: on numba's threads in the
    parallel compilation), each into its own slices of the workspaces ``As``, ``dZs``,
    ``dXs``, ``douts`` and of the gradients ``dWp``, ``dBp`` (tuples over layers of
    arrays with a leading ``parts`` axis; ``dXs[0]`` has no rows: the first layer's
    input gradient is not needed). With one part these are views of the layers' own
    workspaces and gradients ``dWs``, ``dBs``, and the step makes exactly the Python
    loop's calls; with more, the gradients are the mean of the parts'. ``Ws``, ``Bs``
    are the layers' parameters, ``acts``/``alphas`` their activation codes and slopes;
    ``values``/``counts`` hold each part's loss and correct count (``classify``: count).
    ``loss_kernel``, ``count_kernel`` and ``update`` are those :func:`fit_epoch_jit` binds.

    Then, on the whole buffer: the L1/L2 penalty (``l1``/``l2`` already divided by the
    batch size), a finite loss or stop, ``saved`` := ``param``, the gradient check
    (``check``, a ``CHECK_*``; ``stop_nonfinite``: a non-finite gradient ends the
    epoch; ``clip_norm > 0`` scales ``gscale`` by ``clip_coefficient`` of its norm)
    and ``update(param, grad, *state, *rows[s])``: row ``s`` holds step ``s``'s
    ``gscale`` (the sign of ``maximize``), ``clip`` and scalars in the parameters'
    dtype; ``like`` is a tuple as long as a row.

    Returns ``(total, correct, steps, saved_at, status, value)``: the sum of
    ``loss * batch size`` and the correct count over the ``steps`` steps taken, the
    step whose parameters ``saved`` holds (-1: none), ``DONE`` or the reason the epoch
    stopped at step ``steps``, and that step's loss.
    """
    parts, h = xb.shape[0], xb.shape[1]
    bs = parts * h
    n_layers = len(Ws)
    total = 0.0
    correct = 0
    saved_at = -1
    for s in range(order.shape[0] // bs):
        for t in range(parts):
            for r in range(h):
                j = order[s * bs + t * h + r]
                for c in range(X.shape[1]):
                    xb[t, r, c] = X[j, c]
                tb[t, r] = T[j]
        for t in prange(parts):  # forward, loss and backward of part t
            for layer in range(n_layers):
                dense_forward_jit(xb[t] if layer == 0 else As[layer - 1][t], Ws[layer],
                                  Bs[layer], acts[layer], alphas[layer], As[layer][t])
            values[t] = loss_kernel(As[n_layers - 1][t], tb[t], douts[t])
            for layer in range(n_layers - 1, -1, -1):
                dense_backward_jit(xb[t] if layer == 0 else As[layer - 1][t], Ws[layer],
                                   As[layer][t],
                                   douts[t] if layer == n_layers - 1 else dXs[layer + 1][t],
                                   acts[layer], alphas[layer], dZs[layer][t], dWp[layer][t],
                                   dBp[layer][t], dXs[layer][t])
            if classify:
                counts[t] = count_kernel(As[n_layers - 1][t], tb[t])
        value = values[0]
        if parts > 1:
            value = 0.0
            for t in range(parts):
                value += values[t]
            value /= parts
            for layer in range(n_layers):
                _mean_of_parts(dWp[layer], dWs[layer])
                _mean_of_parts(dBp[layer], dBs[layer])
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
            for t in range(parts):
                correct += counts[t]
    return total, correct, order.shape[0] // bs, saved_at, DONE, 0.0


_COMPILED = {}


def fit_epoch_jit(optimizer, loss, count, parallel=False):
    """:func:`fit_epoch_loop` compiled with the ``OPTIMIZER_KERNELS``, ``LOSS_KERNELS`` and
    ``COUNT_KERNELS`` of those names as ``update``, ``loss_kernel`` and ``count_kernel``
    (compiled on first call, cached on disk); ``parallel``: its parts on numba's
    threads."""
    key = (optimizer, loss, count, parallel)
    if key not in _COMPILED:
        _COMPILED[key] = jit_bound(fit_epoch_loop, "_".join(key[:3]), parallel,
                                   update=OPTIMIZER_KERNELS[optimizer]["jit"],
                                   loss_kernel=LOSS_KERNELS[loss]["jit"],
                                   count_kernel=COUNT_KERNELS[count]["jit"])
    return _COMPILED[key]
