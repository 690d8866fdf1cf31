"""A counter-based random generator: Philox4x32-10, in three forms.

numba's own generator keeps one state per thread and is not seeded by
``np.random.seed``, so masks drawn from it depend on the thread count. A
counter-based generator is a keyed hash instead: the random word of element ``e``
at training step ``s`` is a pure function of ``(key, s, e)``, so any thread can
compute any element, in any order, and get the same number (Salmon et al., "Parallel
random numbers: as easy as 1, 2, 3", SC 2011; cuRAND and PyTorch's CUDA dropout use
the same generator).

One call of :func:`philox4x32` maps a 128-bit counter and a 64-bit key to four
32-bit words; element ``e`` takes word ``e % 4`` of the block whose counter is
``(e // 4, s)``. Every multiplication is 32 x 32 -> 64 bits, so the arithmetic
never overflows ``uint64`` (the loop form runs in Python without overflow warnings)
and compiles to the SIMD multiply of AVX2.

Kernels: ``uniform_<form>(key, step, out)`` fills ``out`` (any C-contiguous float
array) with ``word * 2**-32``, uniform on [0, 1).
"""

import math

import numpy as np
from numba import prange
from numba.extending import register_jitable

from .._config import jit_parallel

# Philox4x32 multipliers and Weyl key increments (Random123).
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_INV32 = 2.0 ** -32

#: Elements per parallel chunk: a multiple of 4 (whole Philox blocks) large enough
#: that a thread's share of work dwarfs the cost of handing it out.
CHUNK = 4096


@register_jitable
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on the counter ``(c0, c1, c2, c3)`` under the key ``(k0, k1)``.

    All arguments and the four returned words are ``uint64`` holding 32-bit values.
    """
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0 = (p1 >> _S32) ^ c1 ^ k0
        c1 = p1 & _MASK32
        c2 = (p0 >> _S32) ^ c3 ^ k1
        c3 = p0 & _MASK32
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


@register_jitable
def split_key(key, step):
    """The Philox key words of a 64-bit ``key`` and the counter words of ``step``."""
    k = np.uint64(key)
    s = np.uint64(step)
    return k & _MASK32, k >> _S32, s & _MASK32, s >> _S32


def philox4x32_vec(c0, c1, c2, c3, k0, k1):
    """:func:`philox4x32` on arrays of counters: its operations are elementwise, so the
    same rounds run on NumPy ``uint64`` arrays (which wrap silently, as scalars do not)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    return philox4x32(c0, c1, c2, c3, np.uint64(k0), np.uint64(k1))


def words_vec(key, step, size):
    """The first ``size`` random 32-bit words of ``(key, step)``, in element order, as
    a ``uint64`` array (the vectorized generator every ``*_vec`` kernel draws from)."""
    k0, k1, s0, s1 = split_key(key, step)
    blocks = np.arange((size + 3) // 4, dtype=np.uint64)
    zeros = np.zeros_like(blocks)
    w = philox4x32_vec(blocks & _MASK32, blocks >> _S32, zeros + s0, zeros + s1, k0, k1)
    return np.stack(w, axis=1).reshape(-1)[:size]


def keep_threshold(rate):
    """The integer ``T`` with ``word < T  <=>  word * 2**-32 < 1 - rate`` for 32-bit words:
    an element is kept with probability ``T / 2**32``, within 2**-32 of ``1 - rate``."""
    return np.uint64(math.ceil((1.0 - rate) * 2.0 ** 32))


# ---------------------------------------------------------------------- uniform
def uniform_loop(key, step, out):
    """out[e] = word(key, step, e) * 2^-32, uniform on [0, 1)."""
    flat = out.reshape(out.size)
    n = flat.shape[0]
    k0, k1, s0, s1 = split_key(key, step)
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        for b in range(chunk * (CHUNK // 4), (min((chunk + 1) * CHUNK, n) + 3) // 4):
            blk = np.uint64(b)
            w0, w1, w2, w3 = philox4x32(blk & _MASK32, blk >> _S32, s0, s1, k0, k1)
            e = 4 * b
            flat[e] = np.float64(w0) * _INV32
            if e + 1 < n:
                flat[e + 1] = np.float64(w1) * _INV32
            if e + 2 < n:
                flat[e + 2] = np.float64(w2) * _INV32
            if e + 3 < n:
                flat[e + 3] = np.float64(w3) * _INV32


def uniform_vec(key, step, out):
    """out[e] = word(key, step, e) * 2^-32, uniform on [0, 1)."""
    flat = out.reshape(-1)
    np.multiply(words_vec(key, step, flat.size).astype(np.float64), _INV32, out=flat,
                casting="unsafe")


uniform_jit = jit_parallel(uniform_loop)

UNIFORM = {"loop": uniform_loop, "vec": uniform_vec, "jit": uniform_jit}
