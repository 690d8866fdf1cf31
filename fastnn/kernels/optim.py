"""Optimizer updates over a flat parameter buffer, in three forms.

Each kernel is one fused pass over ``param`` and ``grad`` (1-D arrays of equal
length, usually the whole model's flat buffers) and the optimizer's state arrays,
updating them in place. Every scalar (learning rate, bias corrections, ...) is
computed once per step in Python (:mod:`fastnn.optim`) and passed in. Signatures
are uniform::

    <name>_<form>(param, grad, *state, gscale, clip, *scalars, out=None)

where the gradient each kernel uses is ``g = clamp(gscale * grad, -clip, clip)``:
``gscale`` folds together the global-norm clipping coefficient and the sign flip
of ``maximize`` (``-(c g) == (-c) g`` exactly), and ``clip`` is the value-clipping
bound (``inf`` when off). The new parameters go to ``out`` if given (an array like
``param``, which then keeps the old ones: fit's compiled epoch alternates two buffers
this way instead of copying a snapshot before each step), else to ``param``. Weight
decay, the update and the state follow PyTorch's ``torch.optim`` single-tensor path,
operation by operation, so that float64 runs match it to rounding (PyTorch's CPU
kernels contract some products into FMAs, so agreement is to about 1e-15 relative per
step, not to the bit).

Arithmetic is in the arrays' dtype, as PyTorch's CPU kernels do: the caller passes
every float scalar already converted to that dtype (``np.float32`` for float32
buffers), elements are loaded as they are, and no float literal takes part in the
arithmetic (numba would make ``1.0 - w`` float64 where NumPy keeps it float32), so the
loop run by Python (NumPy float32 scalars do IEEE float32 arithmetic) and its JIT
compilation agree to the bit while fastmath is off. Float32 arithmetic matters for
speed: AVX-512 holds 16 float32 against 8 float64, and ``vsqrtps`` / ``vdivps``,
the costly steps of Adam-like updates, are twice as fast per element as their
float64 forms; in float64 a 10M-parameter Adam step is compute-bound (12 ms on one
core), in float32 it is bound by memory, like a copy of the same arrays.

Loop-invariant choices that decide which state arrays are touched (AMSGrad, momentum,
centered) are taken outside the element loop, one loop per case: left inside, LLVM
if-converts them into masked AVX-512 loads and stores of the unused, empty state
array, which the CPU executes with a microcode assist each time (measured: a
10M-parameter float32 Adam step 50 to 200 ms instead of 4 ms).

Subnormal state. Every state value goes through :func:`flush` before it is stored: a
value below the dtype's smallest normal number (a subnormal) becomes a zero of its sign,
in the three forms alike; NaN and inf pass. IEEE arithmetic would keep it, and x86 runs
every vector operation that reads or makes a subnormal through a microcode assist: the
averages of a unit whose gradient stopped (a dead ReLU unit, a feature absent from the
recent batches) decay by beta per step into that range (Adam's m after about 800 steps)
and, as their rounding stalls there, stay. Measured before the flush, float32, Intel:
an Adam step over 235k parameters whose state was subnormal took 5.6 ms against 0.14 ms,
and an epoch of 784-256-128-10 whose units had died (uniform [0, 1) inputs, Adam) went
from 412 ms to 820-890 ms by its third (PyTorch's fused Adam likewise, 630 to 1,160 ms);
with it, 430-490 ms. Compiled, it is a test of the exponent field and a masked and
(``vptestnmd``, ``vandps``): 2-5 % on a step at 10M, about 1 % at 235k. It departs from
PyTorch only there, and by little: what a subnormal average adds to a parameter's step is
below step size x 2^-126 / eps (for Adam's defaults about 1e-32).

The loops are ``prange`` loops over blocks of elements: plain ``range`` when Python
runs them and in the serial JIT form ``<name>_jit``, split over numba's threads in
``<name>_jit_parallel`` (:func:`fastnn._config.jit_parallel`). Every element is
independent, so both JIT forms give the same bits, whatever the blocks. From
``PREFETCH_MIN`` elements (1M: arrays that stream from memory), where
:data:`fastnn._config.PREFETCH` says so (everywhere but on AMD Zen, where the
prefetching blocks slowed the updates up to 1.5x: see there), a block is ``BLOCK``
(128) elements and first asks the CPU, with LLVM's ``prefetch``, for its arrays'
elements ``AHEAD`` (512) further on; the loads then find their lines in cache. On
Intel the hardware prefetchers alone left the core waiting: Adam's square root and division keep
its out-of-order window full, so it sees few loads ahead (measured, 10M float32, two
threads: Adam 4.2-4.3 ms against 3.6 ms for the plain 7-stream copy, the same with
its arithmetic cut to a multiplication; with the prefetch 3.3-4.1 ms, 1.01-1.10x that
copy, and the copy itself prefetched 3.0-3.3 ms). Below ``PREFETCH_MIN`` the arrays
are in cache, where prefetch instructions only take load slots, and 16 larger blocks
do. The element index is unsigned, ``lo + j``: indexed with a signed one, numba's
negative-index check kept LLVM from vectorizing the block's loop (Adam 2.4 to 5x
slower).

The optimizers take the parallel form from
:data:`fastnn._config.OPTIM_PARALLEL_MIN` elements (262144) once
:func:`fastnn._config.set_num_threads` gave fastnn threads. Measured on 2 cores,
float32 Adam alone: two threads are 1.6x faster from 16K elements and 1.9x from 128K;
alternating with an njit ``np.dot`` (128x784 @ 784x256) on a one-thread BLAS, as in
training, 0.10 against 0.16 ms at 300K and 0.28 against 0.57 ms at 1M. At 10M float32
with two threads every update took the time of a plain copy over its own arrays on the
AMD machine, 0.96 to 1.02x (Adam 4.6 ms like the 7-stream copy; SGD with momentum,
Adagrad, RMSprop 3.2 ms like a 5-stream copy), before the prefetching; on the Intel
one, 1.11 to 1.36x, then 0.91 to 1.17x with it (``benchmarks/test_bench_perf_optim.py``).

The helpers below are inlined into the loops by numba (``inline="always"``): called
as functions, LLVM left them out of line and the serial loops stayed scalar.

Also here: the sum of squared gradients (global-norm clipping, and the non-finite
check of float64 gradients), the largest exponent (the non-finite check of float32
gradients) and the L1/L2 weight penalty added to the loss and its gradient.
"""

import math

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload, register_jitable

from .._config import PREFETCH, jit, jit_parallel
from . import forms


#: Elements per block of the update loops. Each block first asks the CPU to fetch its
#: arrays' elements ``AHEAD`` further on (see the module docstring).
BLOCK = 128
AHEAD = 512
#: Elements from which the loops prefetch (where ``_config.PREFETCH`` says so): smaller
#: arrays sit in cache, where the prefetch instructions only take load slots
#: (prefetching, a 15k-element Adam step took 9.6 us instead of 7.7).
PREFETCH_MIN = 1 << 20
_LINE = 64  # bytes in a cache line


@register_jitable(inline="always")
def _block_size(n):
    """``BLOCK`` where the loops prefetch (``n >= PREFETCH_MIN``), else n / 16 rounded
    up to a multiple of ``BLOCK``: in cache a block costs its loop's set-up and nothing
    comes of it, but 16 blocks still split over up to 16 threads. A multiple of
    ``BLOCK`` leaves no scalar remainder but the last block's (LLVM's vector loop takes
    32 elements a turn, and Adam's scalar square roots and divisions are slow: with
    blocks of exactly n / 16 a 15k-element step took 7.5-8.6 us, now 6.3-6.6 as the
    flat loop's 6.3-6.8). Without the prefetch (``_config.PREFETCH`` off) every size runs
    in those 16 blocks: on AMD Zen 4 the blocks of 128 alone, without the prefetch
    instructions, took Adam at 10M from 1.07x to 1.30x a plain copy."""
    if PREFETCH and n >= PREFETCH_MIN:
        return BLOCK
    return (n // 16 // BLOCK + 1) * BLOCK


@register_jitable(inline="always")
def blocks(n):
    """Blocks of :func:`_block_size` elements in ``n`` (the last may be shorter)."""
    size = _block_size(n)
    return (n + size - 1) // size


@register_jitable(inline="always")
def block(k, a, b, c=None, d=None, e=None):
    """``(lo, width)`` of block ``k`` of the arrays (all of ``a``'s length), after asking
    the CPU for each array's block ``AHEAD`` elements further on (:func:`prefetch`).
    Unsigned integers: a loop ``for j in range(width)`` indexing ``a[lo + np.uint64(j)]``
    then has no negative-index check (numba wraps signed indices), which keeps LLVM
    from vectorizing it. (``np.uint64(j)``: in Python, NumPy 1.x makes ``uint64 + int``
    a float.)"""
    n = a.shape[0]
    size = np.uint64(_block_size(n))
    lo = np.uint64(k) * size
    prefetch(lo, a, b, c, d, e)
    return lo, min(size, np.uint64(n) - lo)


@intrinsic
def prefetch_line(typingctx, a, i):
    """LLVM's ``prefetch`` of the cache line holding ``a[i]`` (read, all cache levels)."""
    sig = types.void(a, i)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), i8p),
                          i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


def prefetch(lo, a, b, c=None, d=None, e=None):
    """Ask the CPU for each array's block ``AHEAD`` elements after ``lo`` (not past its
    end), so that the loads of that block find it in cache; nothing when Python runs the
    loop. (Its overloads are left to LLVM to inline: numba's own inlining of them took
    Adam's serial compilation from 1.9 to 3.5 s, for no faster step.)"""


@overload(prefetch)
def _prefetch(lo, a, b, c=None, d=None, e=None):
    def impl(lo, a, b, c=None, d=None, e=None):
        start = lo + np.uint64(AHEAD)
        _ahead(a, start)
        _ahead(b, start)
        _ahead(c, start)
        _ahead(d, start)
        _ahead(e, start)

    return impl


def _ahead(a, start):
    """Prefetch ``a[start:start + BLOCK]``, a cache line at a time (nothing for None)."""


@overload(_ahead)
def _ahead_jit(a, start):
    if a is None or isinstance(a, (types.NoneType, types.Omitted)):
        return lambda a, start: None

    def impl(a, start):
        n = np.uint64(a.shape[0])
        if PREFETCH and n >= np.uint64(PREFETCH_MIN) and start + np.uint64(BLOCK) <= n:
            for j in range(0, BLOCK, _LINE // a.itemsize):
                prefetch_line(a, start + np.uint64(j))

    return impl


def _out(param, out):
    """Where a loop form writes the new parameters: ``out``, or ``param`` itself (in
    place) when it is None."""
    return param if out is None else out


@overload(_out)
def _out_jit(param, out):
    if out is None or isinstance(out, (types.NoneType, types.Omitted)):
        return lambda param, out: param
    return lambda param, out: out


def _into_vec(param, out):
    """Where a vec form updates in place: ``param``, or ``out`` holding a copy of it."""
    if out is None:
        return param
    out[...] = param
    return out


@register_jitable(inline="always")
def _load(param, grad, i, gscale, clip, weight_decay):
    """(theta_i, g_i) with g = clamp(gscale grad_i, -clip, clip) and PyTorch's coupled
    weight decay ``g + wd theta`` (skipped at wd = 0, so that an inf theta does not
    make a NaN)."""
    p = param[i]
    # min/max keep a NaN (the comparisons fail) exactly as Python's min/max do; no
    # branch reassigns g, which numba's IR inliner does not handle cleanly
    g = min(max(grad[i] * gscale, -clip), clip)
    return p, _coupled_decay(g, p, weight_decay)


@register_jitable(inline="always")
def _coupled_decay(g, p, weight_decay):
    """g + wd theta, or g itself at wd = 0."""
    if weight_decay != 0.0:
        return g + weight_decay * p
    return g


@register_jitable(inline="always")
def _lerp(a, b, w, one_minus_w):
    """a + w (b - a), in the form torch's CPU ``lerp`` uses for each half of w."""
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * one_minus_w


@register_jitable(inline="always")
def _moments(exp_avg, exp_avg_sq, i, g, one_minus_beta1, beta1, beta2, one_minus_beta2):
    """Adam's m := lerp(m, g, 1 - beta1) and v := beta2 v + (1 - beta2) g^2, stored."""
    m = flush(_lerp(exp_avg[i], g, one_minus_beta1, beta1))
    exp_avg[i] = m
    v = flush(exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g)
    exp_avg_sq[i] = v
    return m, v


def _grad_vec(param, grad, gscale, clip, weight_decay):
    """A new array: g clipped, with the coupled weight decay ``g + wd theta``."""
    g = grad * gscale
    if clip != math.inf:
        np.clip(g, -clip, clip, out=g)
    if weight_decay != 0.0:
        g += weight_decay * param
    return g


def _lerp_vec(a, b, w, one_minus_w):
    """In-place ``a := lerp(a, b, w)``."""
    if w < 0.5:
        a += w * (b - a)
    else:
        np.subtract(b, (b - a) * one_minus_w, out=a)


def flush(x):
    """``x``, or a zero of its sign when ``|x|`` is below its dtype's smallest normal
    number (a subnormal): what every state value goes through before it is stored (see
    the module docstring). A NaN stays NaN (the comparison fails)."""
    tiny = np.finfo(type(x)).tiny
    return np.copysign(type(x)(0), x) if abs(x) < tiny else x


@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float32 / float64 as an unsigned integer of its width."""
    uint = types.uint32 if x == types.float32 else types.uint64
    sig = uint(x)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(uint))

    return sig, codegen


@overload(flush, inline="always")
def _flush_jit(x):
    # below the smallest normal number exactly when the exponent field is all zeros: one
    # AVX-512 test of the bits (vptestnmd) where |x| < tiny takes an and and a compare
    dtype = np.dtype(str(x))
    field = F32_EXPONENT if dtype == np.float32 else np.uint64(0x7FF0000000000000)
    zero = dtype.type(0)

    def impl(x):
        if _float_bits(x) & field == 0:
            return math.copysign(zero, x)
        return x

    return impl


def _flush_vec(a):
    """In place, :func:`flush` of every element of ``a``."""
    np.copysign(a.dtype.type(0), a, out=a, where=np.abs(a) < np.finfo(a.dtype).tiny)


# -------------------------------------------------------------------------- SGD
@register_jitable(inline="always")
def _sgd_apply(out, buf, i, p, g, b, lr, momentum, nesterov):
    """Store v = b (flushed); theta := theta - lr (g + mu v if nesterov else v)."""
    b = flush(b)
    buf[i] = b
    out[i] = p - lr * _sgd_direction(g, b, momentum, nesterov)


@register_jitable(inline="always")
def _sgd_direction(g, b, momentum, nesterov):
    if nesterov:
        return g + momentum * b
    return b


def sgd_loop(param, grad, buf, gscale, clip, lr, weight_decay, momentum,
             one_minus_dampening, nesterov, first, out=None):
    """g += wd theta; v := mu v + (1 - dampening) g (v := g on the first step);
    theta := theta - lr (g + mu v if nesterov else v). ``buf`` is unused when mu = 0."""
    out = _out(param, out)
    n = param.shape[0]
    if momentum == 0.0:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                out[i] = p - lr * g
    elif first:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad, buf)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                _sgd_apply(out, buf, i, p, g, g, lr, momentum, nesterov)
    else:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad, buf)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                b = buf[i] * momentum + one_minus_dampening * g
                _sgd_apply(out, buf, i, p, g, b, lr, momentum, nesterov)


def sgd_vec(param, grad, buf, gscale, clip, lr, weight_decay, momentum,
            one_minus_dampening, nesterov, first, out=None):
    """g += wd theta; v := mu v + (1 - dampening) g (v := g on the first step);
    theta := theta - lr (g + mu v if nesterov else v). ``buf`` is unused when mu = 0."""
    param = _into_vec(param, out)
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    if momentum != 0.0:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            buf += one_minus_dampening * g
        _flush_vec(buf)
        if nesterov:
            g += momentum * buf
        else:
            g = buf
    param -= lr * g


# --------------------------------------------- momentum, the lecture's EWA form
def momentum_loop(param, grad, v, gscale, clip, lr, weight_decay, beta, one_minus_beta,
                  bias_correction, out=None):
    """V := beta V + (1 - beta) dW; W := W - lr V / bias_correction, with
    ``bias_correction = 1 - beta^t`` (or 1 without correction)."""
    out = _out(param, out)
    for k in prange(blocks(param.shape[0])):
        lo, width = block(k, param, grad, v)
        for j in range(width):
            i = lo + np.uint64(j)
            p, g = _load(param, grad, i, gscale, clip, weight_decay)
            m = flush(beta * v[i] + one_minus_beta * g)
            v[i] = m
            out[i] = p - lr * (m / bias_correction)


def momentum_vec(param, grad, v, gscale, clip, lr, weight_decay, beta, one_minus_beta,
                 bias_correction, out=None):
    """V := beta V + (1 - beta) dW; W := W - lr V / bias_correction, with
    ``bias_correction = 1 - beta^t`` (or 1 without correction)."""
    param = _into_vec(param, out)
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    v *= beta
    v += one_minus_beta * g
    _flush_vec(v)
    param -= lr * (v / bias_correction)


# ---------------------------------------------------------------------- Adagrad
def adagrad_loop(param, grad, state_sum, gscale, clip, clr, weight_decay, eps, out=None):
    """G := G + g^2; theta := theta - clr g / (sqrt(G) + eps), with
    ``clr = lr / (1 + (t - 1) lr_decay)``."""
    out = _out(param, out)
    for k in prange(blocks(param.shape[0])):
        lo, width = block(k, param, grad, state_sum)
        for j in range(width):
            i = lo + np.uint64(j)
            p, g = _load(param, grad, i, gscale, clip, weight_decay)
            s = flush(state_sum[i] + g * g)
            state_sum[i] = s
            out[i] = p - clr * g / (np.sqrt(s) + eps)


def adagrad_vec(param, grad, state_sum, gscale, clip, clr, weight_decay, eps, out=None):
    """G := G + g^2; theta := theta - clr g / (sqrt(G) + eps), with
    ``clr = lr / (1 + (t - 1) lr_decay)``."""
    param = _into_vec(param, out)
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    state_sum += g * g
    _flush_vec(state_sum)
    param -= clr * g / (np.sqrt(state_sum) + eps)


# ---------------------------------------------------------------------- RMSprop
@register_jitable(inline="always")
def _rms_square(square_avg, i, g, alpha, one_minus_alpha):
    """S := alpha S + (1 - alpha) g^2, stored and returned."""
    s = flush(square_avg[i] * alpha + one_minus_alpha * g * g)
    square_avg[i] = s
    return s


@register_jitable(inline="always")
def _rms_center(grad_avg, i, g, s, one_minus_alpha, alpha_lerp, eps):
    """M := lerp(M, g, 1 - alpha), stored; returns max(S - M^2, 0) (NaN stays NaN)."""
    m = flush(_lerp(grad_avg[i], g, one_minus_alpha, alpha_lerp))
    grad_avg[i] = m
    # eps - eps: a zero of the arrays' dtype (a literal 0.0 would be float64 in numba)
    return max(s - m * m, eps - eps)


@register_jitable(inline="always")
def _rms_momentum(out, buf, i, p, g, d, lr, momentum):
    """B := mu B + g / d; theta := theta - lr B."""
    b = flush(buf[i] * momentum + g / d)
    buf[i] = b
    out[i] = p - lr * b


def rmsprop_loop(param, grad, square_avg, grad_avg, buf, gscale, clip, lr, weight_decay,
                 alpha, one_minus_alpha, alpha_lerp, eps, momentum, centered, out=None):
    """S := alpha S + (1 - alpha) g^2; centered: M := lerp(M, g, 1 - alpha),
    d = sqrt(S - M^2) + eps, else d = sqrt(S) + eps; with momentum
    B := mu B + g / d, theta := theta - lr B, else theta := theta - lr g / d.

    Where rounding makes S - M^2 negative (nearly constant gradients) it is taken as
    0, not NaN as in PyTorch."""
    out = _out(param, out)
    n = param.shape[0]
    if centered and momentum > 0.0:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad, square_avg, grad_avg, buf)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                s = _rms_square(square_avg, i, g, alpha, one_minus_alpha)
                s = _rms_center(grad_avg, i, g, s, one_minus_alpha, alpha_lerp, eps)
                _rms_momentum(out, buf, i, p, g, np.sqrt(s) + eps, lr, momentum)
    elif centered:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad, square_avg, grad_avg)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                s = _rms_square(square_avg, i, g, alpha, one_minus_alpha)
                s = _rms_center(grad_avg, i, g, s, one_minus_alpha, alpha_lerp, eps)
                out[i] = p - lr * g / (np.sqrt(s) + eps)
    elif momentum > 0.0:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad, square_avg, buf)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                s = _rms_square(square_avg, i, g, alpha, one_minus_alpha)
                _rms_momentum(out, buf, i, p, g, np.sqrt(s) + eps, lr, momentum)
    else:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad, square_avg)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                s = _rms_square(square_avg, i, g, alpha, one_minus_alpha)
                out[i] = p - lr * g / (np.sqrt(s) + eps)


def rmsprop_vec(param, grad, square_avg, grad_avg, buf, gscale, clip, lr, weight_decay,
                alpha, one_minus_alpha, alpha_lerp, eps, momentum, centered, out=None):
    """S := alpha S + (1 - alpha) g^2; centered: M := lerp(M, g, 1 - alpha),
    d = sqrt(S - M^2) + eps, else d = sqrt(S) + eps; with momentum
    B := mu B + g / d, theta := theta - lr B, else theta := theta - lr g / d."""
    param = _into_vec(param, out)
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    square_avg *= alpha
    square_avg += one_minus_alpha * g * g
    _flush_vec(square_avg)
    if centered:
        _lerp_vec(grad_avg, g, one_minus_alpha, alpha_lerp)
        _flush_vec(grad_avg)
        d = np.sqrt(np.maximum(square_avg - grad_avg * grad_avg, 0.0)) + eps
    else:
        d = np.sqrt(square_avg) + eps
    if momentum > 0.0:
        buf *= momentum
        buf += g / d
        _flush_vec(buf)
        param -= lr * buf
    else:
        param -= lr * g / d


# --------------------------------------------------------------------- Adadelta
def adadelta_loop(param, grad, square_avg, acc_delta, gscale, clip, lr, weight_decay,
                  rho, one_minus_rho, eps, out=None):
    """S := rho S + (1 - rho) g^2; dx = sqrt(D + eps) / sqrt(S + eps) g;
    D := rho D + (1 - rho) dx^2; theta := theta - lr dx (eps inside both roots).
    The two roots are taken as one, ``sqrt((D + eps) / (S + eps))``: one square root
    less an element (the divider bounded the step: 1.15-1.24x the plain copy at 10M
    float32), a few ulp from PyTorch's two."""
    out = _out(param, out)
    for k in prange(blocks(param.shape[0])):
        lo, width = block(k, param, grad, square_avg, acc_delta)
        for j in range(width):
            i = lo + np.uint64(j)
            p, g = _load(param, grad, i, gscale, clip, weight_decay)
            s = flush(square_avg[i] * rho + one_minus_rho * g * g)
            square_avg[i] = s
            a = acc_delta[i]
            delta = np.sqrt((a + eps) / (s + eps)) * g
            acc_delta[i] = flush(a * rho + one_minus_rho * delta * delta)
            out[i] = p - lr * delta


def adadelta_vec(param, grad, square_avg, acc_delta, gscale, clip, lr, weight_decay,
                 rho, one_minus_rho, eps, out=None):
    """S := rho S + (1 - rho) g^2; dx = sqrt(D + eps) / sqrt(S + eps) g;
    D := rho D + (1 - rho) dx^2; theta := theta - lr dx (eps inside both roots)."""
    param = _into_vec(param, out)
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    square_avg *= rho
    square_avg += one_minus_rho * g * g
    _flush_vec(square_avg)
    delta = np.sqrt((acc_delta + eps) / (square_avg + eps)) * g
    acc_delta *= rho
    acc_delta += one_minus_rho * delta * delta
    _flush_vec(acc_delta)
    param -= lr * delta


# ------------------------------------------------------------ Adam, AdamW, AMSGrad
def adam_loop(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, gscale, clip, decay,
              weight_decay, one_minus_beta1, beta1, beta2, one_minus_beta2, step_size,
              inv_bc2_sqrt, eps, amsgrad, out=None):
    """theta := decay theta (AdamW); g += wd theta (Adam); m := lerp(m, g, 1 - beta1);
    v := beta2 v + (1 - beta2) g^2 (AMSGrad: vmax := max(vmax, v), used for v);
    theta := theta - step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps), with
    ``step_size = lr / (1 - beta1^t)``: eps outside the root, as in PyTorch.
    ``inv_bc2_sqrt = 1 / sqrt(1 - beta2^t)`` multiplies where PyTorch divides: one
    division less per element (division and square root bound the step while the
    arrays are in cache: 0.40 -> 0.29 ns an element at 235k float32), <= 1 ulp apart."""
    out = _out(param, out)
    # decoupled decay (AdamW) and coupled decay (Adam) never both act: wd = 0 or
    # decay = 1, so the order of the two does not matter
    n = param.shape[0]
    if amsgrad:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad, max_exp_avg_sq, exp_avg, exp_avg_sq)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                m, v = _moments(exp_avg, exp_avg_sq, i, g, one_minus_beta1, beta1, beta2,
                                one_minus_beta2)
                vmax = max_exp_avg_sq[i]
                if v > vmax:
                    vmax = v
                max_exp_avg_sq[i] = vmax
                out[i] = p * decay - step_size * m / (np.sqrt(vmax) * inv_bc2_sqrt + eps)
    else:
        for k in prange(blocks(n)):
            lo, width = block(k, param, grad, exp_avg, exp_avg_sq)
            for j in range(width):
                i = lo + np.uint64(j)
                p, g = _load(param, grad, i, gscale, clip, weight_decay)
                m, v = _moments(exp_avg, exp_avg_sq, i, g, one_minus_beta1, beta1, beta2,
                                one_minus_beta2)
                out[i] = p * decay - step_size * m / (np.sqrt(v) * inv_bc2_sqrt + eps)


def adam_vec(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, gscale, clip, decay,
             weight_decay, one_minus_beta1, beta1, beta2, one_minus_beta2, step_size,
             inv_bc2_sqrt, eps, amsgrad, out=None):
    """theta := decay theta (AdamW); g += wd theta (Adam); m := lerp(m, g, 1 - beta1);
    v := beta2 v + (1 - beta2) g^2 (AMSGrad: vmax := max(vmax, v), used for v);
    theta := theta - step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps)."""
    param = _into_vec(param, out)
    param *= decay
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    _lerp_vec(exp_avg, g, one_minus_beta1, beta1)
    _flush_vec(exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += one_minus_beta2 * g * g
    _flush_vec(exp_avg_sq)
    v = exp_avg_sq
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    param -= step_size * exp_avg / (np.sqrt(v) * inv_bc2_sqrt + eps)


# ----------------------------------------------------------------------- Adamax
def adamax_loop(param, grad, exp_avg, exp_inf, gscale, clip, weight_decay, one_minus_beta1,
                beta1, beta2, eps, clr, out=None):
    """m := lerp(m, g, 1 - beta1); u := max(beta2 u, |g| + eps);
    theta := theta - clr m / u, with ``clr = lr / (1 - beta1^t)``."""
    out = _out(param, out)
    for k in prange(blocks(param.shape[0])):
        lo, width = block(k, param, grad, exp_avg, exp_inf)
        for j in range(width):
            i = lo + np.uint64(j)
            p, g = _load(param, grad, i, gscale, clip, weight_decay)
            m = flush(_lerp(exp_avg[i], g, one_minus_beta1, beta1))
            exp_avg[i] = m
            u = exp_inf[i] * beta2
            a = abs(g) + eps
            if a > u:
                u = a
            u = flush(u)
            exp_inf[i] = u
            out[i] = p - clr * m / u


def adamax_vec(param, grad, exp_avg, exp_inf, gscale, clip, weight_decay, one_minus_beta1,
               beta1, beta2, eps, clr, out=None):
    """m := lerp(m, g, 1 - beta1); u := max(beta2 u, |g| + eps);
    theta := theta - clr m / u, with ``clr = lr / (1 - beta1^t)``."""
    param = _into_vec(param, out)
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    _lerp_vec(exp_avg, g, one_minus_beta1, beta1)
    _flush_vec(exp_avg)
    exp_inf *= beta2
    np.maximum(exp_inf, np.abs(g) + eps, out=exp_inf)
    _flush_vec(exp_inf)
    param -= clr * exp_avg / exp_inf


# ------------------------------------------------------------------------ NAdam
def nadam_loop(param, grad, exp_avg, exp_avg_sq, gscale, clip, decay, weight_decay,
               one_minus_beta1, beta1, beta2, one_minus_beta2, inv_bc2_sqrt, eps, c_grad,
               c_avg, out=None):
    """m := lerp(m, g, 1 - beta1); v := beta2 v + (1 - beta2) g^2;
    d = sqrt(v / (1 - beta2^t)) + eps; theta := theta - (c_grad g + c_avg m) / d
    with ``c_grad = lr (1 - mu_t) / (1 - prod mu)`` and
    ``c_avg = lr mu_{t+1} / (1 - prod mu mu_{t+1})`` (Dozat's Nesterov momentum).
    As in Adam, ``inv_bc2_sqrt = 1 / sqrt(1 - beta2^t)`` multiplies the root, and the two
    terms share one division (PyTorch divides three times: ``v / bc2``, then ``g / d``
    and ``m / d`` in two ``addcdiv``; the divider bounded the step, 1.36-1.48x the plain
    copy at 10M float32), a few ulp from PyTorch."""
    out = _out(param, out)
    for k in prange(blocks(param.shape[0])):
        lo, width = block(k, param, grad, exp_avg, exp_avg_sq)
        for j in range(width):
            i = lo + np.uint64(j)
            # decoupled decay (AdamW) and coupled decay (Adam) never both act: wd = 0 or
            # decay = 1, so the order of the two does not matter
            p, g = _load(param, grad, i, gscale, clip, weight_decay)
            p = p * decay
            m, v = _moments(exp_avg, exp_avg_sq, i, g, one_minus_beta1, beta1, beta2,
                            one_minus_beta2)
            d = np.sqrt(v) * inv_bc2_sqrt + eps
            out[i] = p - (c_grad * g + c_avg * m) / d


def nadam_vec(param, grad, exp_avg, exp_avg_sq, gscale, clip, decay, weight_decay,
              one_minus_beta1, beta1, beta2, one_minus_beta2, inv_bc2_sqrt, eps, c_grad,
              c_avg, out=None):
    """m := lerp(m, g, 1 - beta1); v := beta2 v + (1 - beta2) g^2;
    d = sqrt(v / (1 - beta2^t)) + eps; theta := theta - (c_grad g + c_avg m) / d."""
    param = _into_vec(param, out)
    param *= decay
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    _lerp_vec(exp_avg, g, one_minus_beta1, beta1)
    _flush_vec(exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += one_minus_beta2 * g * g
    _flush_vec(exp_avg_sq)
    d = np.sqrt(exp_avg_sq) * inv_bc2_sqrt + eps
    param -= (c_grad * g + c_avg * exp_avg) / d


# -------------------------------------------------------- gradient norm, penalty
@register_jitable
def clip_coefficient(total_norm, max_norm):
    """``min(max_norm / (total_norm + 1e-6), 1)``, ``torch.nn.utils.clip_grad_norm_``'s factor."""
    return min(max_norm / (total_norm + 1e-6), 1.0)


#: How far ahead the gradient checks (sum of squares, exponent) prefetch, in elements
#: (8 KB of float32).
CHECK_AHEAD = 2048
#: Elements per block of the sum of squares: blocks are summed in parallel, then their
#: sums in order, so the result does not depend on the thread count.
SUMSQ_BLOCK = 1 << 16


@register_jitable(inline="always")
def _sumsq_range(grad, lo, hi):
    # Eight partial sums, lane l taking the elements lo + l, lo + l + 8, ...: one running
    # sum is a chain of dependent adds that LLVM may not reorder without fastmath. The
    # lanes go in blocks of BLOCK elements, each prefetching CHECK_AHEAD further on.
    lo, hi = np.uint64(lo), np.uint64(hi)
    m = hi - (hi - lo) % np.uint64(8)
    acc = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for b in range(lo, m, np.uint64(BLOCK)):
        _ahead(grad, b + np.uint64(CHECK_AHEAD))
        acc = square_lanes(grad, b, min(b + np.uint64(BLOCK), m), acc)
    s0, s1, s2, s3, s4, s5, s6, s7 = acc
    for i in range(m, hi):
        g = np.float64(grad[i])
        s0 += g * g
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def square_lanes(a, lo, hi, acc):
    """``acc`` (8 float64) with ``acc[l] += float64(a[i])^2`` for i = lo + l, lo + l + 8,
    ... < hi, in that order (``hi - lo`` a multiple of 8). Compiled, one vector of eight
    float64 lanes: the same multiplications and additions, in the same order, as this
    loop (no fused multiply-add: fastmath is off), where the scalar loop stayed scalar
    (LLVM's SLP vectorizer left the eight chains alone: 10M float32 with two threads
    took 3.4-10 ms, compute-bound)."""
    s = list(acc)
    for i in range(lo, hi, 8):
        for lane in range(8):
            g = np.float64(a[i + lane])
            s[lane] += g * g
    return tuple(s)


@overload(square_lanes)
def _square_lanes_jit(a, lo, hi, acc):
    if a.layout != "C":  # strided: the scalar lanes
        def strided(a, lo, hi, acc):
            s0, s1, s2, s3, s4, s5, s6, s7 = acc
            for i in range(lo, hi, np.uint64(8)):
                g0, g1 = np.float64(a[i]), np.float64(a[i + np.uint64(1)])
                g2, g3 = np.float64(a[i + np.uint64(2)]), np.float64(a[i + np.uint64(3)])
                g4, g5 = np.float64(a[i + np.uint64(4)]), np.float64(a[i + np.uint64(5)])
                g6, g7 = np.float64(a[i + np.uint64(6)]), np.float64(a[i + np.uint64(7)])
                s0 += g0 * g0
                s1 += g1 * g1
                s2 += g2 * g2
                s3 += g3 * g3
                s4 += g4 * g4
                s5 += g5 * g5
                s6 += g6 * g6
                s7 += g7 * g7
            return (s0, s1, s2, s3, s4, s5, s6, s7)

        return strided
    return lambda a, lo, hi, acc: _square_lanes_vector(a, lo, hi, acc)


@intrinsic
def _square_lanes_vector(typingctx, a, lo, hi, acc):
    """:func:`square_lanes` over a contiguous array as LLVM vector code."""
    sig = types.UniTuple(types.float64, 8)(a, lo, hi, acc)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        f64, i64 = ir.DoubleType(), ir.IntType(64)
        elt = context.get_data_type(signature.args[0].dtype)
        vec, vec_in = ir.VectorType(f64, 8), ir.VectorType(elt, 8)
        start = ir.Constant(vec, ir.Undefined)
        for lane in range(8):
            start = builder.insert_element(start, builder.extract_value(args[3], lane),
                                           i64(lane))
        total = cgutils.alloca_once_value(builder, start)
        with cgutils.for_range_slice(builder, args[1], args[2], i64(8), intp=i64) as (i, _):
            ptr = builder.bitcast(builder.gep(data, [i]), vec_in.as_pointer())
            x = builder.load(ptr, align=signature.args[0].dtype.bitwidth // 8)
            if elt != f64:
                x = builder.fpext(x, vec)
            builder.store(builder.fadd(builder.load(total), builder.fmul(x, x)), total)
        out = builder.load(total)
        return context.make_tuple(builder, signature.return_type,
                                  [builder.extract_element(out, i64(lane)) for lane in range(8)])

    return sig, codegen


def sumsq_loop(grad):
    """sum_i grad_i^2 in float64: NaN or inf if any element is (or if it overflows)."""
    n = grad.shape[0]
    nblocks = (n + SUMSQ_BLOCK - 1) // SUMSQ_BLOCK
    partial = np.empty(nblocks)  # a few hundred bytes for 10M elements
    for b in prange(nblocks):
        partial[b] = _sumsq_range(grad, b * SUMSQ_BLOCK, min(n, (b + 1) * SUMSQ_BLOCK))
    total = 0.0
    for b in range(nblocks):
        total += partial[b]
    return total


def sumsq_vec(grad):
    """sum_i grad_i^2 in float64: NaN or inf if any element is (or if it overflows)."""
    return float(np.einsum("i,i->", grad, grad, dtype=np.float64))


#: The exponent field of float32 seen as uint32: all ones for inf and NaN only.
F32_EXPONENT = np.uint32(0x7F800000)


def max_exponent_loop(bits, mask):
    """max_i (bits_i & mask): with ``bits`` a float array viewed as unsigned integers and
    ``mask`` its exponent field, equal to ``mask`` exactly when an element is inf or NaN.

    The non-finite check of float32 gradients, whose squared norm cannot overflow
    float64 (n (2^128)^2 < 2^1024 for any n < 2^768), so that this says the same as a
    non-finite sum of squares. An integer max vectorizes and splits over threads in any
    order, where a float64 sum does neither without fastmath. Blocks as the updates',
    each prefetching ``CHECK_AHEAD`` elements on: one stream alone waits on memory
    with the hardware prefetchers only (10M float32, two threads, right after an Adam
    step evicted it: 0.98-1.11 ms, 0.76 with the prefetch; 512 ahead as the updates:
    no faster)."""
    n = bits.shape[0]
    size = np.uint64(_block_size(n))
    worst = mask - mask
    for k in prange(blocks(n)):
        lo = np.uint64(k) * size
        _ahead(bits, lo + np.uint64(CHECK_AHEAD))
        w = mask - mask
        for j in range(min(size, np.uint64(n) - lo)):
            w = max(w, bits[lo + np.uint64(j)] & mask)
        worst = max(worst, w)
    return worst


def max_exponent_vec(bits, mask):
    """max_i (bits_i & mask) (see :func:`max_exponent_loop`)."""
    return np.bitwise_and(bits, mask).max(initial=mask - mask)


def penalty_loop(param, grad, starts, stops, l1, l2):
    """Over the ranges ``[starts[r], stops[r])`` of the weights: dW += l2 W + l1 sign(W);
    returns ``l2/2 sum W^2 + l1 sum |W|`` (``l1``, ``l2`` already divided by m)."""
    s1 = 0.0
    s2 = 0.0
    for r in range(starts.shape[0]):
        for i in range(starts[r], stops[r]):
            w = np.float64(param[i])
            sign = 1.0 if w > 0.0 else (-1.0 if w < 0.0 else 0.0)
            s1 += abs(w)
            s2 += w * w
            grad[i] = np.float64(grad[i]) + l2 * w + l1 * sign
    return 0.5 * l2 * s2 + l1 * s1


def penalty_vec(param, grad, starts, stops, l1, l2):
    """Over the ranges ``[starts[r], stops[r])`` of the weights: dW += l2 W + l1 sign(W);
    returns ``l2/2 sum W^2 + l1 sum |W|`` (``l1``, ``l2`` already divided by m)."""
    s1 = 0.0
    s2 = 0.0
    for a, b in zip(starts, stops):
        w = param[a:b]
        s1 += float(np.abs(w).sum(dtype=np.float64))
        s2 += float(np.einsum("i,i->", w, w, dtype=np.float64))
        grad[a:b] += l2 * w + l1 * np.sign(w)
    return 0.5 * l2 * s2 + l1 * s1


# ------------------------------------------------------------ compiled forms
sgd_jit = jit(sgd_loop)
momentum_jit = jit(momentum_loop)
adagrad_jit = jit(adagrad_loop)
rmsprop_jit = jit(rmsprop_loop)
adadelta_jit = jit(adadelta_loop)
adam_jit = jit(adam_loop)
adamax_jit = jit(adamax_loop)
nadam_jit = jit(nadam_loop)
sumsq_jit = jit(sumsq_loop)
max_exponent_jit = jit(max_exponent_loop)
penalty_jit = jit(penalty_loop)
# the same loops split over numba's threads
sgd_jit_parallel = jit_parallel(sgd_loop)
momentum_jit_parallel = jit_parallel(momentum_loop)
adagrad_jit_parallel = jit_parallel(adagrad_loop)
rmsprop_jit_parallel = jit_parallel(rmsprop_loop)
adadelta_jit_parallel = jit_parallel(adadelta_loop)
adam_jit_parallel = jit_parallel(adam_loop)
adamax_jit_parallel = jit_parallel(adamax_loop)
nadam_jit_parallel = jit_parallel(nadam_loop)
sumsq_jit_parallel = jit_parallel(sumsq_loop)
max_exponent_jit_parallel = jit_parallel(max_exponent_loop)


#: name -> {form -> kernel}; kernels ``(param, grad, *state, gscale, clip, *scalars)``.
OPTIMIZER_KERNELS = {name: forms(globals(), name) for name in
                     ("sgd", "momentum", "adagrad", "rmsprop", "adadelta", "adam", "adamax",
                      "nadam")}
SGD_KERNELS = OPTIMIZER_KERNELS["sgd"]
#: name -> the JIT form split over numba's threads (same bits as the serial one).
PARALLEL_KERNELS = {name: globals()[f"{name}_jit_parallel"] for name in
                    (*OPTIMIZER_KERNELS, "sumsq", "max_exponent")}
#: form -> ``sumsq(grad) -> float``.
SUMSQ_KERNELS = forms(globals(), "sumsq")
#: form -> ``max_exponent(bits, mask) -> int``.
MAX_EXPONENT_KERNELS = forms(globals(), "max_exponent")
#: form -> ``penalty(param, grad, starts, stops, l1, l2) -> float``.
PENALTY_KERNELS = forms(globals(), "penalty")
