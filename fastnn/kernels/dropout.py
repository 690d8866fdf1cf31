"""Inverted dropout, in three forms.

In training each element is kept with probability ``1 - rate`` and kept elements are
divided by ``1 - rate``, so that the expected activation is unchanged and evaluation
needs no rescaling (the lecture's "inverse dropout")::

    A = D * Z / (1 - rate)          dZ = D * dA / (1 - rate)

with ``D`` the 0/1 mask. ``D[e] = [word(key, step, e) < threshold]`` comes from the
counter-based generator of ``random.py``, compared as 32-bit integers (no conversion
to float). The multiplication is done in the array's dtype with ``scale`` rounded to
it, as PyTorch does: in float32 a kept element is within 2 ulp of ``Z / (1 - rate)``
(exact for rates such as 0.2, 0.5, 0.75 whose scale is a short binary fraction).

Measured on 256 x 4096 float32, one thread (the benchmark
``benchmarks/test_bench_perf_dropout_norm.py``): the forward takes about 0.17 ms,
against 0.10 ms for NumPy to multiply the array by a constant (the memory floor) and
7.4 ms with the Philox generator this module used before. Storing the mask as
``uint8`` costs the forward about 0.02 ms (0.145 ms without it); the backward reading
it takes 0.105 ms, regenerating it would take about 0.145 ms, so the mask is stored
(and the backward needs no key or step).

How the loops are written, and why (each found by reading the assembly,
``dropout_forward_jit.serial.inspect_asm(...)``):

* the element loop runs over slices indexed from 0: on ``range(lo, hi)`` numba's
  negative-index wraparound check keeps LLVM from vectorizing, which made the loop
  ten times slower;
* the generator's arithmetic is held in 32-bit words (see ``random.py``), so it runs
  16 lanes to an AVX-512 register;
* the product is taken in the array's dtype: a float32 -> float64 -> float32 round
  trip in the same loop as the 32-bit hash made LLVM split the vectors and cost
  twice the time.

Forward ``(x, key, step, threshold, scale, mask, out)``: ``key`` the layer's 64-bit
key, ``step`` the model's training step, ``threshold`` from
``random.keep_threshold(rate)``, ``scale = 1 / (1 - rate)``, ``mask`` a ``uint8``
array of ``x``'s shape. Backward ``(dy, mask, scale, dx)``. Arrays are C-contiguous;
``out`` may alias ``x`` and ``dx`` ``dy``. The JIT forms run serially below
``_config.PARALLEL_MIN`` elements and split chunks of ``random.CHUNK`` elements over
numba's threads above it; since each element's mask depends only on its index, the
result does not depend on the thread count.
"""

import numpy as np
from numba import prange

from .._config import jit_sized
from . import forms
from .random import CHUNK, keep_limit, stream, triple32, weyl, weyl_next, words_vec


def dropout_forward_loop(x, key, step, threshold, scale, mask, out):
    """A = D * Z / (1 - rate), D[e] = [word(key, step, e) < threshold], D stored in ``mask``."""
    xf = x.reshape(x.size)
    mf = mask.reshape(mask.size)
    of = out.reshape(out.size)
    n = xf.shape[0]
    a, g = stream(key, step)
    limit = keep_limit(threshold)
    s = xf.dtype.type(scale)
    zero = xf.dtype.type(0)
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        lo = chunk * CHUNK
        hi = min(lo + CHUNK, n)
        xs, ms, outs = xf[lo:hi], mf[lo:hi], of[lo:hi]
        w = weyl(a, g, lo)
        for k in range(hi - lo):
            keep = triple32(w) <= limit
            ms[k] = keep
            outs[k] = xs[k] * s if keep else zero
            w = weyl_next(w, g)


def dropout_forward_vec(x, key, step, threshold, scale, mask, out):
    """A = D * Z / (1 - rate), D[e] = [word(key, step, e) < threshold], D stored in ``mask``."""
    np.less_equal(words_vec(key, step, x.size).reshape(x.shape), keep_limit(threshold),
                  out=mask, casting="unsafe")
    np.multiply(x, x.dtype.type(scale), out=out)
    out[mask == 0] = 0


def dropout_backward_loop(dy, mask, scale, dx):
    """dZ = D * dA / (1 - rate), with the forward's mask D."""
    df = dy.reshape(dy.size)
    mf = mask.reshape(mask.size)
    of = dx.reshape(dx.size)
    n = df.shape[0]
    s = df.dtype.type(scale)
    zero = df.dtype.type(0)
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        lo = chunk * CHUNK
        hi = min(lo + CHUNK, n)
        ds, ms, outs = df[lo:hi], mf[lo:hi], of[lo:hi]
        for k in range(hi - lo):
            outs[k] = ds[k] * s if ms[k] != 0 else zero


def dropout_backward_vec(dy, mask, scale, dx):
    """dZ = D * dA / (1 - rate), with the forward's mask D."""
    np.multiply(dy, dy.dtype.type(scale), out=dx)
    dx[mask == 0] = 0


dropout_forward_jit = jit_sized(dropout_forward_loop)
dropout_backward_jit = jit_sized(dropout_backward_loop)

DROPOUT_FORWARD = forms(globals(), "dropout_forward")
DROPOUT_BACKWARD = forms(globals(), "dropout_backward")
