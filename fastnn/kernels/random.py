"""A counter-based random generator: a Weyl sequence hashed by ``triple32``, in three forms.

numba's own generator keeps one state per thread and is not seeded by
``np.random.seed``, so masks drawn from it depend on the thread count. A
counter-based generator is a keyed hash instead: the random word of element ``e``
at training step ``s`` is a pure function of ``(key, s, e)``, so any thread can
compute any element, in any order, and get the same number (Salmon et al., "Parallel
random numbers: as easy as 1, 2, 3", SC 2011)::

    (a, g) = stream(key, step)               two 32-bit words, g odd, hashed once per call
    word(e) = triple32((a + e * g) mod 2^32)

``stream`` hashes the four 32-bit halves of ``key`` and ``step`` through ``triple32``
in a chain, so every step of every layer gets its own offset ``a`` *and* its own odd
stride ``g``: two streams are then different arithmetic progressions, not shifted
copies of one sequence (which a shared stride would make them). This is SplitMix's
design (Steele, Lea and Flood, OOPSLA 2014: a Weyl sequence through a strong
finalizer) in 32 bits.

Why not Philox4x32-10 (cuRAND's, and this module's until it was measured): its
rounds are 32 x 32 -> 64-bit multiplies that LLVM does not vectorize, about 15 ns per
four elements, so dropout on 256 x 4096 took 7.4 ms, as long as PyTorch's. Every
step of ``triple32`` is a 32-bit multiply, shift or xor, which compiles to 16-lane
AVX-512 (8-lane AVX2) code: the word costs less than loading and storing the element.

Quality, and its caveat. ``triple32`` (Chris Wellons, "Prospecting for hash
functions", 2018, hash-prospector) is a bijection of 32-bit words found by search for
the lowest avalanche bias with three multiplies: flipping one input bit flips each
output bit with a probability very close to 1/2 (Wellons's bias score 0.0209, against
about 0.26 for murmur3's ``fmix32`` and 0.17 for his two-multiply ``lowbias32``).
That is evidence of good mixing, not a proof of randomness: unlike
Philox, which passes TestU01's BigCrush, this generator has not been through
BigCrush or PractRand here. The tests check what dropout relies on (kept fraction,
no correlation between neighbours, rows, steps or layers, uniform words) and an
avalanche check of ``triple32``. Two further limits: a stream has 2^32 words (the
element index is taken mod 2^32, far beyond any array fastnn trains on), and the
keep decision uses all 32 bits (resolution 2^-32, as before).

Every multiplication is of two values below 2^32, so the arithmetic never overflows
``uint64`` (the loop form runs in Python without overflow warnings); the casts to
``np.uint32`` tell LLVM that only 32 bits are live, which is what lets it use the
32-bit vector multiply ``vpmulld`` instead of 64-bit lanes.

Kernels: ``uniform_<form>(key, step, out)`` fills ``out`` (any C-contiguous float
array) with ``word * 2**-32``, uniform on [0, 1).
"""

import math

import numpy as np
from numba import prange
from numba.extending import register_jitable

from .._config import jit_sized
from . import forms

_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_INV32 = 2.0 ** -32

# triple32's multipliers and shifts (Wellons, hash-prospector).
_T1, _T2, _T3 = np.uint64(0xED5AD4BB), np.uint64(0xAC4C1B51), np.uint64(0x31848BAB)
_R1, _R2, _R3, _R4 = np.uint64(17), np.uint64(11), np.uint64(15), np.uint64(14)
# Distinct constants for the key chain, so that (key, step) = (0, 0) does not hash 0.
_C_STEP = np.uint64(0x9E3779B9)
_C_STRIDE = np.uint64(0x7F4A7C15)

#: Elements per parallel chunk: large enough that a thread's share of work dwarfs
#: the cost of handing it out. Words do not depend on it.
CHUNK = 16384


@register_jitable
def _mul32(x, c):
    return np.uint32((np.uint64(x) * c) & _MASK32)


@register_jitable
def _xorshift(x, s):
    return np.uint32(x ^ (x >> s))


@register_jitable
def triple32(x):
    """Wellons's ``triple32`` hash of 32-bit words (a bijection); works elementwise on
    NumPy arrays too. Returns ``np.uint32``."""
    x = _mul32(_xorshift(x, _R1), _T1)
    x = _mul32(_xorshift(x, _R2), _T2)
    x = _mul32(_xorshift(x, _R3), _T3)
    return _xorshift(x, _R4)


@register_jitable
def stream(key, step):
    """The offset ``a`` and odd stride ``g`` of the ``(key, step)`` stream, as ``uint64``
    holding 32-bit values: the halves of the 64-bit ``key`` and ``step`` chained
    through :func:`triple32`."""
    k = np.uint64(key)
    s = np.uint64(step)
    h = triple32(np.uint32((s >> _S32) ^ _C_STEP))
    h = triple32(np.uint32(h ^ (s & _MASK32)))
    h = triple32(np.uint32(h ^ (k >> _S32)))
    a = triple32(np.uint32(h ^ (k & _MASK32)))
    g = triple32(np.uint32(a ^ _C_STRIDE)) | np.uint32(1)
    return np.uint64(a), np.uint64(g)


@register_jitable
def weyl(a, g, e):
    """The Weyl counter ``(a + e g) mod 2^32`` of element ``e``, as ``np.uint32``."""
    return np.uint32((a + np.uint64(e & 0xFFFFFFFF) * g) & _MASK32)


@register_jitable
def weyl_next(w, g):
    """The counter of the next element: ``(w + g) mod 2^32``. Loops step the counter
    by this addition rather than multiplying ``e g`` for each element: LLVM does not
    turn the truncated 64-bit product into an addition, and the multiply cost a
    third of the dropout forward."""
    return np.uint32((np.uint64(w) + g) & _MASK32)


@register_jitable
def word(a, g, e):
    """The random 32-bit word of element ``e`` of the stream ``(a, g)``."""
    return triple32(weyl(a, g, e))


@register_jitable
def keep_limit(threshold):
    """``threshold - 1`` as ``np.uint32``, so that ``word < threshold`` is the 32-bit
    compare ``word <= limit`` (``threshold`` is in [1, 2^32])."""
    return np.uint32((np.uint64(threshold) - np.uint64(1)) & _MASK32)


def words_vec(key, step, size):
    """The first ``size`` random words of ``(key, step)``, in element order, as a
    ``uint32`` array (the vectorized generator every ``*_vec`` kernel draws from)."""
    a, g = stream(key, step)
    return triple32(weyl(a, g, np.arange(size, dtype=np.uint64)))


def keep_threshold(rate):
    """The integer ``T`` with ``word < T  <=>  word * 2**-32 < 1 - rate`` for 32-bit words:
    an element is kept with probability ``T / 2**32``, within 2**-32 of ``1 - rate``."""
    return np.uint64(math.ceil((1.0 - rate) * 2.0 ** 32))


# ---------------------------------------------------------------------- uniform
def uniform_loop(key, step, out):
    """out[e] = word(key, step, e) * 2^-32, uniform on [0, 1)."""
    flat = out.reshape(out.size)
    n = flat.shape[0]
    a, g = stream(key, step)
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        lo = chunk * CHUNK
        part = flat[lo:min(lo + CHUNK, n)]  # indexed from 0: see dropout.py
        w = weyl(a, g, lo)
        for k in range(part.shape[0]):
            part[k] = np.float64(triple32(w)) * _INV32
            w = weyl_next(w, g)


def uniform_vec(key, step, out):
    """out[e] = word(key, step, e) * 2^-32, uniform on [0, 1)."""
    flat = out.reshape(-1)
    np.multiply(words_vec(key, step, flat.size).astype(np.float64), _INV32, out=flat,
                casting="unsafe")


uniform_jit = jit_sized(uniform_loop, size=lambda key, step, out: out.size)

UNIFORM = forms(globals(), "uniform")
