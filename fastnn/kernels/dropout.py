"""Inverted dropout, in three forms.

In training each element is kept with probability ``1 - rate`` and kept elements are
divided by ``1 - rate``, so that the expected activation is unchanged and evaluation
needs no rescaling (the lecture's "inverse dropout")::

    A = D * Z / (1 - rate)          dZ = D * dA / (1 - rate)

with ``D`` the 0/1 mask. ``D[e] = [word(key, step, e) < threshold]`` comes from the
counter-based generator of ``random.py``. The forward pass stores ``D`` as ``uint8``
for the backward pass rather than regenerating it: measured on 256 x 4096 float32
with one thread, the forward costs the same either way (7.4 ms regenerating, 8.0 ms
also storing the mask: ten Philox rounds per four elements dominate) while the
backward reading the mask takes 1.7 ms against 7.4 ms regenerating it. (Should the
generator become much cheaper, regenerating would save the byte per element.)

Forward ``(x, key, step, threshold, scale, mask, out)``: ``key`` the layer's 64-bit
key, ``step`` the model's training step, ``threshold`` from
``random.keep_threshold(rate)``, ``scale = 1 / (1 - rate)``, ``mask`` a ``uint8``
array of ``x``'s shape. Backward ``(dy, mask, scale, dx)``. Arrays are C-contiguous;
``out`` may alias ``x`` and ``dx`` ``dy``. Work is split over threads in chunks of
``random.CHUNK`` elements; since each element's mask depends only on its index, the
result does not depend on the thread count.
"""

import numpy as np
from numba import prange

from .._config import jit_parallel
from .random import CHUNK, _MASK32, _S32, philox4x32, split_key, words_vec


def dropout_forward_loop(x, key, step, threshold, scale, mask, out):
    """A = D * Z / (1 - rate), D[e] = [word(key, step, e) < threshold], D stored in ``mask``."""
    xf = x.reshape(x.size)
    mf = mask.reshape(mask.size)
    of = out.reshape(out.size)
    n = xf.shape[0]
    k0, k1, s0, s1 = split_key(key, step)
    t = np.uint64(threshold)
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        for b in range(chunk * (CHUNK // 4), (min((chunk + 1) * CHUNK, n) + 3) // 4):
            blk = np.uint64(b)
            w = philox4x32(blk & _MASK32, blk >> _S32, s0, s1, k0, k1)
            for lane in range(4):
                e = 4 * b + lane
                if e < n:
                    if w[lane] < t:
                        mf[e] = 1
                        of[e] = np.float64(xf[e]) * scale
                    else:
                        mf[e] = 0
                        of[e] = 0.0


def dropout_forward_vec(x, key, step, threshold, scale, mask, out):
    """A = D * Z / (1 - rate), D[e] = [word(key, step, e) < threshold], D stored in ``mask``."""
    np.less(words_vec(key, step, x.size).reshape(x.shape), np.uint64(threshold), out=mask,
            casting="unsafe")
    np.multiply(x.astype(np.float64) * scale, mask, out=out, casting="unsafe")


def dropout_backward_loop(dy, mask, scale, dx):
    """dZ = D * dA / (1 - rate), with the forward's mask D."""
    df = dy.reshape(dy.size)
    mf = mask.reshape(mask.size)
    of = dx.reshape(dx.size)
    n = df.shape[0]
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        for e in range(chunk * CHUNK, min((chunk + 1) * CHUNK, n)):
            of[e] = np.float64(df[e]) * scale if mf[e] != 0 else 0.0


def dropout_backward_vec(dy, mask, scale, dx):
    """dZ = D * dA / (1 - rate), with the forward's mask D."""
    np.multiply(dy.astype(np.float64) * scale, mask, out=dx, casting="unsafe")


dropout_forward_jit = jit_parallel(dropout_forward_loop)
dropout_backward_jit = jit_parallel(dropout_backward_loop)

DROPOUT_FORWARD = {"loop": dropout_forward_loop, "vec": dropout_forward_vec,
                   "jit": dropout_forward_jit}
DROPOUT_BACKWARD = {"loop": dropout_backward_loop, "vec": dropout_backward_vec,
                    "jit": dropout_backward_jit}
