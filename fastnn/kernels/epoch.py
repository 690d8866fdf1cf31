"""A whole epoch of mini-batch training of a stack of dense layers, in one compiled call.

For a small network a training step is a few tens of microseconds of arithmetic, and
Python's own bookkeeping around the kernels (``Sequential._train_step``: the layer
calls, the workspace lookups, the optimizer's scalars) costs about as much again.
``fit_epoch_jit`` runs the epoch's full batches inside numba instead, making for
each batch exactly the kernel calls the Python loop makes, in the same order:

    gather the batch                 X[order[b*bs:(b+1)*bs]]
    Z[l] = g(A[l-1] W[l]^T + b[l])   dense_forward_jit, layer by layer
    J, dZ[L]                         the loss kernel (+ the L1/L2 penalty)
    dZ[l], dA[l-1]                   dense_backward_rows, layer by layer
    dW[l], db[l]                     dense_weight_grads, layer by layer
    check g finite (and its norm)    max_exponent / sumsq, as Optimizer.step does
    keep theta                       the snapshot a diverging step rolls back to
    theta := update(theta, g)        the optimizer's fused kernel, that step's scalars
    count correct predictions        the loss's count kernel

(``dense_backward_jit`` is those two backward calls) so it gives the same bits as the
Python loop (tests/test_epoch.py). It has no loop or vec form of its own: its loop form
is ``Sequential._fit_epoch`` itself, which makes the same calls one at a time from
Python.

Given threads (``fastnn.set_num_threads(n)``, BLAS on one thread), its parallel
compilation splits each batch into ``n`` parts of rows whose forward pass, loss, dZ and
dA run side by side, each part's loss gradient divided by ``n`` (each part's loss is a
mean over its rows); then ``n`` shares of each layer's output units take their rows of
dW and db over the whole batch, side by side, so that no thread sums another's
gradient, and (float32, no L1/L2 penalty) each share checks its gradient for inf and
NaN while it is in cache; then the same shares update the parameters whose gradient
they computed (each layer's rows of W and entries of b of those units, in that core's
cache), and copy those rows of a small layer's W into the columns of its transpose
(``wts``, ``_epoch.TRANSPOSED_UP_TO`` says which): the next step's forward pass
multiplies by that copy, as BLAS's plain X Y, which OpenBLAS's small-matrix kernels run
faster than X W^T (``dense_forward_t``; 40-100-100-10, batch 100: the parts' forward
passes 28 -> 19 us a step, the update with the copy 12 -> 18 us, the epoch 2.5 %
faster). A first layer of large weights (``units_first``) runs its forward pass by
shares of its output units too, after the rows are gathered: each thread then reads
the weights it has just updated itself, still in its core's cache, where a part of
rows reads them all, half from the other core (``_epoch.UNITS_FIRST_BYTES`` says from
what size that pays for the extra parallel region). The same to rounding as the serial
run (for two parts the products' blocking, and their form, may round differently).
"""

import math

import numpy as np
from numba import prange
from numba.extending import overload, register_jitable
from numba.np.unsafe.ndarray import to_fixed_tuple

from .._config import jit_bound
from .dense import (
    dense_backward_rows,
    dense_forward_into,
    dense_forward_jit,
    dense_forward_t,
    dense_weight_grads,
)
from .losses import COUNT_KERNELS, LOSS_KERNELS
from .optim import (
    F32_EXPONENT,
    OPTIMIZER_KERNELS,
    clip_coefficient,
    max_exponent_jit,
    penalty_jit,
    prefetch_line,
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
# each compilation (fit_epoch_jit), so that each has its own disk cache entry. SPLIT,
# False in the serial compilation (which runs one part), lets numba prune the code only a
# split batch runs: a new process's first fit of a two-layer stack, every kernel
# compiled, 21.5 s with that code, 17.3 s without (21.0-21.6 s before the copy of W^T).
loss_kernel = count_kernel = update = None
SPLIT = True


def state_slices(state, lo, hi):
    """The elements ``[lo, hi)`` of each array of the tuple ``state`` (an empty array
    stays empty: AMSGrad's maximum when unused)."""
    return tuple([a[lo:hi] for a in state])


@overload(state_slices)
def _state_slices(state, lo, hi):
    # numba builds no tuple from a comprehension: one implementation per length
    impls = {
        0: lambda state, lo, hi: (),
        1: lambda state, lo, hi: (state[0][lo:hi],),
        2: lambda state, lo, hi: (state[0][lo:hi], state[1][lo:hi]),
        3: lambda state, lo, hi: (state[0][lo:hi], state[1][lo:hi], state[2][lo:hi]),
    }
    return impls.get(len(state))


#: Rows ahead of the one it copies whose cache lines the batch gather asks for.
GATHER_AHEAD = 2


@register_jitable
def _gather(X, T, order, xb, tb, base, r0, r1):
    """``xb[r], tb[r] := X[j], T[j]`` with ``j = order[base + r]``, for rows ``[r0, r1)``.

    A random row of a large ``X`` comes from memory, and the hardware prefetchers follow
    it only after its first lines: each row's lines are asked for ``GATHER_AHEAD`` rows
    before it is copied. The copy is a loop over the row's elements (numba's
    ``xb[r] = X[j]`` is its generic broadcasting assignment). Serial, 60,000 x 784
    float32 in shuffled batches of 128: 40.8 ms an epoch with the row assignment, 27.7
    with the loop, 23.2 prefetching (13.8 for the rows in order)."""
    for r in range(r0, r1):
        if r + GATHER_AHEAD < r1:
            row = X[order[base + r + GATHER_AHEAD]]
            # a 64-byte line at a time, as optim's ``_ahead`` does over its constant BLOCK
            # (one helper for both, with a variable count, kept LLVM from unrolling that
            # loop: Adam at 10M went from 0.99x to 1.39x its copy)
            for c in range(0, row.shape[0], 64 // row.itemsize):
                prefetch_line(row, np.uint64(c))
        j = order[base + r]
        for c in range(X.shape[1]):
            xb[r, c] = X[j, c]
        tb[r] = T[j]


@register_jitable
def _span(n, t, parts):
    """Part ``t`` of ``parts`` of ``range(n)``: ``(lo, hi)``."""
    return n * t // parts, n * (t + 1) // parts


#: Output units a thread's share of a layer starts at a multiple of (64 bytes of float32,
#: a cache line): fewer lines of b (and its gradient and state), of W^T's copy and of the
#: first layer's output by units are then written by two threads (none where their rows
#: start on a line). 40-100-100-10, batch 100 over 2 threads: 3 % off the epoch.
UNIT_ALIGN = 16


@register_jitable
def _unit_span(n, t, parts):
    """Share ``t`` of ``parts`` of ``n`` output units, ``(lo, hi)``: as :func:`_span`, its
    bounds rounded down to a multiple of ``UNIT_ALIGN`` (a layer of fewer than
    ``UNIT_ALIGN * parts`` units leaves shares empty)."""
    lo = 0 if t == 0 else n * t // parts // UNIT_ALIGN * UNIT_ALIGN
    hi = n if t == parts - 1 else n * (t + 1) // parts // UNIT_ALIGN * UNIT_ALIGN
    return lo, hi


@register_jitable
def _forward_share(x, w, b, act, alpha, out, t, parts, scratch):
    """A[:, lo:hi] = g(X W[lo:hi]^T + b[lo:hi]) for output units ``[lo, hi)``, share ``t``
    of ``parts``, over all the batch's rows: Z contiguous in ``scratch`` (BLAS writes
    whole rows), its activation into the share's columns of ``out``."""
    lo, hi = _unit_span(w.shape[0], t, parts)
    if lo == hi:
        return
    m = x.shape[0]
    z = scratch[:m * (hi - lo)].reshape((m, hi - lo))
    dense_forward_into(x, w[lo:hi], b[lo:hi], act, alpha, z, out[:, lo:hi])


@register_jitable
def _weight_grads_share(x, dz, dw, db, t, parts, dzt):
    """dW, db of output units ``[lo, hi)``, share ``t`` of ``parts`` (all of them for one
    part): sums over all the batch's rows, so the shares write disjoint rows of ``dw``
    and need no reduction. ``dzt`` is this share's scratch for its columns of dZ, copied
    contiguous for BLAS (numba's ``np.dot`` would copy a strided slice itself, allocating)."""
    if parts == 1:
        dense_weight_grads(x, dz, dw, db)
        return
    lo, hi = _unit_span(dw.shape[0], t, parts)
    if lo == hi:
        return
    m = dz.shape[0]
    cols = dzt[:m * (hi - lo)].reshape((m, hi - lo))
    for i in range(m):
        for o in range(hi - lo):
            cols[i, o] = dz[i, lo + o]
    dense_weight_grads(x, cols, dw[lo:hi], db[lo:hi])


@register_jitable
def _transpose_units(w, wt, u0, u1):
    """``wt[:, u0:u1] := w[u0:u1]^T`` (a row of ``wt`` at a time: each thread writes its
    own lines of it)."""
    for k in range(w.shape[1]):
        for o in range(u0, u1):
            wt[k, o] = w[o, k]


@register_jitable
def _share_exponent(dw, db, t, parts):
    """The largest exponent field (``F32_EXPONENT`` for inf or NaN) of share ``t`` of
    ``parts`` of the output units of a float32 layer's gradient ``dw``, ``db``."""
    lo, hi = _unit_span(dw.shape[0], t, parts)
    rows = dw[lo:hi]
    worst = max_exponent_jit(rows.reshape(rows.size).view(np.uint32), F32_EXPONENT)
    return max(worst, max_exponent_jit(db[lo:hi].view(np.uint32), F32_EXPONENT))


@register_jitable
def _settle(param, saved, even, keep_previous):
    """Before the epoch returns at step ``s``, whose parameters are in ``param`` if ``s``
    is even, else in ``saved``: leave them in ``param``, and in ``saved`` those before
    step s - 1 (``keep_previous``: swapping the buffers' contents when s is odd) or the
    same (a step not taken, whose parameters are the snapshot)."""
    if even:
        if not keep_previous:
            saved[:] = param
        return
    if not keep_previous:
        param[:] = saved
        return
    for i in range(param.shape[0]):
        x = param[i]
        param[i] = saved[i]
        saved[i] = x


def fit_epoch_loop(X, T, order, xb, tb, Ws, Bs, dWs, dBs, As, dZs, dXs, acts, alphas, douts,
                   values, counts, classify, starts, stops, l1, l2, param, grad, gbits, state,
                   rows, like, check, stop_nonfinite, clip_norm, saved, saved_Ws, saved_Bs,
                   dzt, wts, units_first, offsets):
    """The epoch's full batches of ``order``, each one step of training.

    A batch is gathered into ``xb``/``tb`` and split into ``parts`` (``values.shape[0]``)
    equal parts of rows; ``prange`` runs them side by side (on numba's threads in the
    parallel compilation): each part's forward pass, loss, ``dZ`` and ``dX`` are its
    rows' own (``units_first``: the first layer's forward pass by shares of its output
    units, over all the rows, after the gather). Then each of ``parts`` shares of every
    layer's output units gets its ``dW``, ``db`` from all the rows (and checks them,
    see below); then the same shares update those parameters (``offsets[layer]``: where
    the layer's W and b start in the flat buffer). With one part this gives exactly the
    Python loop's bits. ``Ws``, ``Bs``,
    ``dWs``, ``dBs`` are the layers' parameters and gradients, ``As``, ``dZs``, ``dXs``
    their workspaces
    (``dXs[0]`` has no rows: the first layer's input gradient is not needed),
    ``acts``/``alphas`` their activation codes and slopes; ``douts`` the loss gradient,
    ``values``/``counts`` each part's loss and correct count (``classify``: count);
    ``dzt`` a ``(parts, k)`` scratch for :func:`_weight_grads_share` and
    :func:`_forward_share`; ``wts[layer]``, ``(n_in, n_out)``, the copy of W^T that
    layer's forward pass multiplies by (with no rows, W itself: see the module
    docstring), kept up to date by each share as it updates W. ``loss_kernel``,
    ``count_kernel`` and ``update`` are those :func:`fit_epoch_jit` binds.

    Then, on the whole buffer: the L1/L2 penalty (``l1``/``l2`` already divided by the
    batch size), a finite loss or stop, the gradient check (``check``, a ``CHECK_*``;
    the exponent check without a penalty is done on the shares above;
    ``stop_nonfinite``: a non-finite gradient ends the epoch; ``clip_norm > 0`` scales
    ``gscale`` by ``clip_coefficient`` of its norm) and ``update(cur, grad, *state,
    *rows[s], nxt)``: row ``s`` holds step ``s``'s ``gscale`` (the sign of
    ``maximize``), ``clip`` and scalars in the parameters' dtype; ``like`` is a tuple
    as long as a row.

    The parameters alternate between two flat buffers, ``param`` (the model's, viewed
    by ``Ws``, ``Bs``) and ``saved`` (the snapshot, viewed by ``saved_Ws``,
    ``saved_Bs``): an even step reads them from ``param`` and writes the update to
    ``saved``, an odd one the other way, so the buffer a step read keeps the parameters
    before it, the snapshot to go back to if the next loss is not finite, without a
    copy (the copy took 3 % of the 784-256-128-10 epoch). When the epoch returns, the
    parameters are in ``param`` and those before the last step taken in ``saved``
    (:func:`_settle`).

    Returns ``(total, correct, steps, saved_at, status, value)``: the sum of
    ``loss * batch size`` and the correct count over the ``steps`` steps taken, the
    step whose parameters ``saved`` holds (-1: none), ``DONE`` or the reason the epoch
    stopped at step ``steps``, and that step's loss.
    """
    parts, bs = values.shape[0], xb.shape[0]
    # the exponent check runs on each share of dW, db as it is computed, unless the L1/L2
    # penalty adds to the gradient after that (then it is a pass over ``gbits``)
    early = check == CHECK_EXPONENT and l1 == 0.0 and l2 == 0.0
    n_layers = len(Ws)
    last = n_layers - 1
    n = param.shape[0]
    total = 0.0
    correct = 0
    saved_at = -1
    for layer in range(n_layers):  # step 0 reads the parameters from ``param``
        if SPLIT and wts[layer].shape[0] > 0:
            _transpose_units(Ws[layer], wts[layer], 0, Ws[layer].shape[0])
    for s in range(order.shape[0] // bs):
        # the parameters alternate between the buffers (see the docstring): ``cur``
        # holds them, ``nxt`` gets the update
        even = s % 2 == 0
        Wc, Bc = (Ws, Bs) if even else (saved_Ws, saved_Bs)
        cur, nxt = (param, saved) if even else (saved, param)
        if SPLIT and units_first:  # gather by rows, then the first layer by output units
            for t in prange(parts):
                r0, r1 = _span(bs, t, parts)
                _gather(X, T, order, xb, tb, s * bs, r0, r1)
            for t in prange(parts):
                _forward_share(xb, Wc[0], Bc[0], acts[0], alphas[0], As[0], t, parts,
                               dzt[t])
        for t in prange(parts):  # rows [r0, r1): gather, forward, loss, dZ and dX
            r0, r1 = _span(bs, t, parts)
            if not (SPLIT and units_first):
                _gather(X, T, order, xb, tb, s * bs, r0, r1)
            for layer in range(1 if SPLIT and units_first else 0, n_layers):
                x = xb[r0:r1] if layer == 0 else As[layer - 1][r0:r1]
                if SPLIT and wts[layer].shape[0] > 0:  # W^T's copy, up to date with ``cur``
                    dense_forward_t(x, wts[layer], Bc[layer], acts[layer], alphas[layer],
                                    As[layer][r0:r1])
                else:
                    dense_forward_jit(x, Wc[layer], Bc[layer], acts[layer], alphas[layer],
                                      As[layer][r0:r1])
            values[t] = loss_kernel(As[last][r0:r1], tb[r0:r1], douts[r0:r1])
            if parts > 1:  # the part's loss is a mean over its rows, the batch's over bs
                for r in range(r0, r1):
                    for c in range(douts.shape[1]):
                        douts[r, c] = douts[r, c] / parts
            for layer in range(last, -1, -1):
                dense_backward_rows(Wc[layer], As[layer][r0:r1],
                                    (douts if layer == last else dXs[layer + 1])[r0:r1],
                                    acts[layer], alphas[layer], dZs[layer][r0:r1],
                                    dXs[layer][r0:r1])
            if classify:
                counts[t] = count_kernel(As[last][r0:r1], tb[r0:r1])
        worst = F32_EXPONENT - F32_EXPONENT  # the gradient's largest exponent field
        for t in prange(parts):  # each share of the output units: dW, db over all rows
            share_worst = F32_EXPONENT - F32_EXPONENT
            for layer in range(n_layers):
                _weight_grads_share(xb if layer == 0 else As[layer - 1], dZs[layer],
                                    dWs[layer], dBs[layer], t, parts, dzt[t])
                if early:  # checked while the share is still in this core's cache
                    share_worst = max(share_worst,
                                      _share_exponent(dWs[layer], dBs[layer], t, parts))
            worst = max(worst, share_worst)
        value = values[0]
        if parts > 1:
            value = 0.0
            for t in range(parts):
                value += values[t]
            value /= parts
        if l1 != 0.0 or l2 != 0.0:
            value += penalty_jit(cur, grad, starts, stops, l1, l2)
        if not math.isfinite(value):
            _settle(param, saved, even, True)
            return total, correct, s, saved_at, LOSS_NONFINITE, value
        if check == CHECK_EXPONENT and not early:  # after the penalty's additions
            for t in prange(parts):
                lo, hi = _span(n, t, parts)
                worst = max(worst, max_exponent_jit(gbits[lo:hi], F32_EXPONENT))
        if check == CHECK_EXPONENT:
            if worst == F32_EXPONENT and stop_nonfinite:
                _settle(param, saved, even, False)
                return total, correct, s, s, GRAD_NONFINITE, value
        elif check == CHECK_SUMSQ:
            sumsq = sumsq_jit(grad)
            if not math.isfinite(sumsq) and stop_nonfinite:
                _settle(param, saved, even, False)
                return total, correct, s, s, GRAD_NONFINITE, value
            if clip_norm > 0.0:
                # rows are in the parameters' dtype: the scaled gscale is rounded to it
                # on store, as Optimizer.step's cast rounds it
                rows[s, 0] = rows[s, 0] * clip_coefficient(math.sqrt(sumsq), clip_norm)
        # the update runs by the shares of output units that took dW and db above, side
        # by side in the parallel compilation: share t updates the parameters whose
        # gradient it computed, still in its core's cache (every element's update is its
        # own: the same bits as one pass over the buffer)
        scalars = row_scalars(rows[s], like)
        for t in prange(parts):
            for layer in range(n_layers):
                u0, u1 = _unit_span(Ws[layer].shape[0], t, parts)
                for seg in range(2):  # the units' rows of W, then their entries of b
                    width = Ws[layer].shape[1] if seg == 0 else 1
                    lo = offsets[layer, seg] + u0 * width
                    hi = offsets[layer, seg] + u1 * width
                    update(cur[lo:hi], grad[lo:hi], *state_slices(state, lo, hi), *scalars,
                           nxt[lo:hi])
                if SPLIT and wts[layer].shape[0] > 0:  # the next step's W^T, just written
                    _transpose_units(saved_Ws[layer] if even else Ws[layer], wts[layer],
                                     u0, u1)
        saved_at = s
        total += value * bs
        if classify:
            for t in range(parts):
                correct += counts[t]
    steps = order.shape[0] // bs
    _settle(param, saved, steps % 2 == 0, True)
    return total, correct, steps, saved_at, DONE, 0.0


_COMPILED = {}


def fit_epoch_jit(optimizer, loss, count, parallel=False):
    """:func:`fit_epoch_loop` compiled with the ``OPTIMIZER_KERNELS``, ``LOSS_KERNELS`` and
    ``COUNT_KERNELS`` of those names as ``update``, ``loss_kernel`` and ``count_kernel``
    (compiled on first call, cached on disk); ``parallel``: its parts on numba's
    threads."""
    key = (optimizer, loss, count, parallel)
    if key not in _COMPILED:
        _COMPILED[key] = jit_bound(fit_epoch_loop, "_".join(key[:3]), parallel,
                                   SPLIT=parallel, update=OPTIMIZER_KERNELS[optimizer]["jit"],
                                   loss_kernel=LOSS_KERNELS[loss]["jit"],
                                   count_kernel=COUNT_KERNELS[count]["jit"])
    return _COMPILED[key]
