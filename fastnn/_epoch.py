"""fit's compiled epoch (``kernels/epoch.py``): which models take it, and its arguments.

``Sequential._fit_epoch`` hands the epoch's full batches to :func:`run_full_batches`,
which runs them in one call of ``fit_epoch_jit`` when the model is a stack of
:class:`~fastnn.layers.Dense` layers on the JIT backend, the loss has epoch kernels for
its targets and the optimizer updates the model's flat buffer with a JIT kernel; else
it returns None and the Python loop runs every batch. Both make the same kernel calls
in the same order: the weights, the optimizer state, the loss and the counts come out
the same to the bit (tests/test_epoch.py). :func:`threads_for_epoch` says who has the
threads while an epoch runs: fastnn's kernels, or BLAS (held to one thread for small
products, :func:`blas_for_batch`).
"""

import contextlib

import numpy as np

from . import _config
from .kernels.epoch import (
    CHECK_EXPONENT,
    CHECK_NONE,
    CHECK_SUMSQ,
    GRAD_NONFINITE,
    LOSS_NONFINITE,
    _unit_span,
    fit_epoch_jit,
)
from .layers import Dense
from .params import flat_base


#: Optimizer._gradient_check -> the compiled epoch's code
_CHECKS = {None: CHECK_NONE, "exponent": CHECK_EXPONENT, "sumsq": CHECK_SUMSQ}


#: Fewest rows in a part of a batch split over threads: below, the batch is not split.
MIN_PART_ROWS = 16


#: Bytes of first-layer weights from which a split batch runs that layer's forward pass
#: by shares of its output units (``units_first`` in kernels/epoch.py): a thread then
#: reads the weights it updated itself instead of half of them from the other core's
#: cache, at the cost of one more parallel region a step (a few microseconds). Measured
#: on the project's 2 cores (Intel, 2026-12-04): 784 x 256 float32 (784 KB), an epoch
#: 6 to 10 % faster; 40 x 100 (16 KB) 6 % slower.
UNITS_FIRST_BYTES = 1 << 18

#: Multiply-adds (a part's rows x inputs x outputs) up to which a split batch's forward
#: pass multiplies by a copy of W^T kept up to date by the update (``wts`` in
#: kernels/epoch.py): OpenBLAS's small-matrix kernels, which run products up to 10^6
#: multiply-adds, take the plain X Y 1.3 to 2x faster than X W^T; above it the two run the
#: same (``kernels/dense.py``, ``dense_forward_t``), and the copy would cost its writes.
TRANSPOSED_UP_TO = 10**6


def _parts(bs):
    """Parts a batch of ``bs`` is split into: one per thread fastnn was given
    (:func:`fastnn.set_num_threads`), when that divides it into parts of at least
    :data:`MIN_PART_ROWS` rows and BLAS is held to one thread (each part calls BLAS
    from its own thread: a multi-threaded BLAS would fight numba's pool); else 1."""
    parts = _config.threads()
    if (parts > 1 and _config.blas_pinned() and bs % parts == 0
            and bs // parts >= MIN_PART_ROWS):
        return parts
    return 1


def blas_for_batch(model, bs):
    """A context manager for an epoch of ``model`` with batches of ``bs``: BLAS held to one
    thread (``_config.blas_one_thread``) when fastnn was given no threads (with threads,
    BLAS is on one already) and the model's largest Dense product, ``bs`` x inputs x
    outputs, is below ``_config.BLAS_SERIAL_BELOW`` multiply-adds, which a second BLAS
    thread slows down (measured there), and not below ``_config.BLAS_SPLIT_FROM``, where
    OpenBLAS uses one thread anyway; else nothing."""
    largest = max([bs * layer.in_features * layer.out_features
                   for layer in model.layers if isinstance(layer, Dense)], default=0)
    if (_config.BLAS_SPLIT_FROM <= largest < _config.BLAS_SERIAL_BELOW
            and not _config.blas_pinned()):
        return _config.blas_one_thread()
    return contextlib.nullcontext()


def _compiled(model, loss, optimizer, target):
    """``(loss kernels, (param, grad, state))`` when ``model`` can take the compiled epoch
    with this loss, targets and optimizer, else None."""
    if (model.backend != "jit" or optimizer.backend != "jit"
            or not all(type(layer) is Dense for layer in model.layers)):
        return None
    kernels = loss.epoch_kernels(target)
    chunks = optimizer._chunks(model._buffer.grads)
    if (kernels is None or len(chunks) != 1 or len(model._last_good.saved) != 1
            or model._last_good.saved[0].shape != chunks[0][0].shape):
        return None
    if optimizer._pick(optimizer._kernel, optimizer._kernel_parallel, chunks[0][0].size) \
            is not optimizer._kernel:
        return None  # a model large enough for the threaded update: not what this is for
    return kernels, chunks[0]


def threads_for_epoch(model, loss, optimizer, target, bs, n):
    """A context manager for one epoch of ``fit`` over ``n`` samples in batches of ``bs``:
    who has the threads while it runs.

    With threads given (:func:`fastnn.set_num_threads`), an epoch whose batches split
    over them (the compiled epoch, :func:`_parts` > 1) keeps them, BLAS on one thread;
    any other runs as without threads given (``_config.threads_to_blas``). Then, without
    threads given, :func:`blas_for_batch`."""
    stack = contextlib.ExitStack()
    if _config.threads() > 1 and not (bs < n and _parts(bs) > 1
                                      and _compiled(model, loss, optimizer, target)):
        stack.enter_context(_config.threads_to_blas())
    stack.enter_context(blas_for_batch(model, bs))  # after the line above: sees its pin
    return stack


def _offset(base, view):
    """Where ``view`` starts in the flat array ``base``, in elements."""
    return (view.__array_interface__["data"][0]
            - base.__array_interface__["data"][0]) // view.itemsize


def _same_place(other, base, view):
    """The view of ``other`` (shaped as ``base``) at the place ``view`` has in ``base``."""
    start = _offset(base, view)
    return other[start:start + view.size].reshape(view.shape)


def _layer_offsets(param, layers):
    """``(n_layers, 2)``: where each layer's W and b start in the flat buffer ``param``,
    which they tile in order (the compiled epoch updates the buffer by these pieces)."""
    pieces = [a for layer in layers for a in (layer.W, layer.b)]
    tiled = flat_base(pieces)
    if tiled is None or _offset(param, tiled) != 0 or tiled.size != param.size:
        raise RuntimeError("the layers' W and b do not tile the parameter buffer "
                           f"({[a.shape for a in pieces]}, buffer size {param.size})")
    return np.array([[_offset(param, layer.W), _offset(param, layer.b)]
                     for layer in layers], np.int64)


def run_full_batches(model, X, target, loss, optimizer, bs, order, penalty):
    """Train on the ``len(order) // bs`` full batches of ``order`` in one compiled call.

    Returns None when the model cannot take the compiled epoch (nothing has run), else
    ``(total, correct, steps, diverged)``: the sum of ``loss * bs`` and the correct count
    over the ``steps`` steps taken, and whether training diverged at step ``steps``
    (``model._divergence`` says why; the snapshot holds the last good state)."""
    compiled = _compiled(model, loss, optimizer, target)
    if compiled is None:
        return None
    kernels, (param, grad, state) = compiled
    saved = model._last_good.saved[0]  # the epoch's second parameter buffer
    layers = model.layers
    dtype = model.dtype
    parts = _parts(bs)
    spaces = [layer.workspace(bs) for layer in layers]
    As, dZs, dXs = (tuple([space[k] for space in spaces]) for k in range(3))
    xb = model._ws.get("xb", (bs, X.shape[1]), dtype)
    tb = model._ws.get("tb", (bs,) + target.shape[1:], target.dtype)
    douts = model._ws.get("dz", (bs, model.n_outputs), dtype)
    # each thread's columns of dZ for its share of dW, or of Z for its share of the first
    # layer (kernels/epoch.py)
    share = max([hi - lo for layer in layers for lo, hi in (
        _unit_span(layer.out_features, t, parts) for t in range(parts))]) if parts > 1 else 0
    dzt = model._ws.get("parts dzt", (parts, bs * share), dtype)
    units_first = parts > 1 and layers[0].W.nbytes >= UNITS_FIRST_BYTES
    wts = tuple([layer._ws.get("W^T", (layer.in_features, layer.out_features), dtype)
                 if parts > 1 and not (k == 0 and units_first)
                 and bs // parts * layer.W.size <= TRANSPOSED_UP_TO
                 else np.zeros((0, 0), dtype) for k, layer in enumerate(layers)])
    values = model._ws.get("parts loss", (parts,), np.float64)
    counts = model._ws.get("parts count", (parts,), np.int64)
    if penalty is None:
        starts = stops = np.zeros(0, np.int64)
        l1 = l2 = 0.0
    else:
        starts, stops, l1, l2 = penalty.starts, penalty.stops, penalty.l1 / bs, penalty.l2 / bs
    n_steps = order.shape[0] // bs
    rows, states = optimizer._scalar_rows(n_steps)
    gbits = grad.view(np.uint32) if dtype == np.float32 else np.zeros(0, np.uint32)
    epoch = fit_epoch_jit(optimizer.kernel, *kernels, parallel=parts > 1)
    total, correct, steps, saved_at, status, value = epoch(
        X, target, order, xb, tb,
        tuple([layer.W for layer in layers]), tuple([layer.b for layer in layers]),
        tuple([layer.dW for layer in layers]), tuple([layer.db for layer in layers]),
        As, dZs, dXs,
        np.array([layer._act for layer in layers], np.int64),
        np.array([layer.alpha for layer in layers], np.float64),
        douts, values, counts, loss.is_classifier, starts, stops, l1, l2,
        param, grad, gbits, state, rows, (0,) * rows.shape[1],
        _CHECKS[optimizer._gradient_check()], optimizer.on_nonfinite != "apply",
        optimizer.clip_norm or 0.0, saved,
        tuple([_same_place(saved, param, layer.W) for layer in layers]),
        tuple([_same_place(saved, param, layer.b) for layer in layers]), dzt, wts,
        units_first, _layer_offsets(param, layers))
    if saved_at >= 0:
        model._last_good.step = model.step + saved_at
    model.step += steps
    optimizer._advance(steps, states)
    if status == LOSS_NONFINITE:
        model._divergence = f"the loss became {value}"
    elif status == GRAD_NONFINITE:
        optimizer._nonfinite_gradient(stacklevel=4)
        model._divergence = "the gradient became inf or NaN"
    return total, correct, steps, status in (LOSS_NONFINITE, GRAD_NONFINITE)
