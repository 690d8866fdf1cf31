"""Activations g(Z) and their derivatives, each in three forms.

Every equation comes as ``<name>_<pass>_loop`` (plain loops, numba-compilable),
``<name>_<pass>_vec`` (NumPy) and ``<name>_<pass>_jit`` (the loop, compiled).
Forward kernels have the signature ``(z, alpha, out)``; backward kernels
``(a, da, alpha, out)`` compute ``dZ = dA * g'(Z)`` written in terms of the
activated output ``A`` (cheaper: no need to keep Z). ``alpha`` is the slope of
leaky ReLU; the other activations ignore it, so one table serves them all.
Arrays are 2-D ``(n_samples, n_units)``; ``out`` may alias the input.

Loop forms load each element as float64, compute, and round once on store. The
arrays keep their dtype (a float32 model stays float32 in memory); the scalar
arithmetic is the same in the Python interpreter and in numba, so the loop form and
its JIT compilation agree to the bit while fastmath is off.

The loop forms are ``register_jitable`` so that compiled kernels elsewhere (the
fused dense kernels) can call them; called from Python they are plain Python. The
dense forward applies its activation in place, ``out`` the same array as ``z``: as a
separate function the loop cannot tell, LLVM's runtime overlap check fails and the
loop runs unvectorized (relu on 100 x 100: 3.2 us instead of 0.54 us). The forward
dispatcher and the piecewise-linear forwards are therefore inlined into their caller
by numba (``inline="always"``), where both names are one array.
"""

import math

import numpy as np
from numba.extending import register_jitable

from .._config import jit
from . import forms

# Integer codes, for kernels that pick the activation inside compiled code.
IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX = range(6)
CODES = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softmax": SOFTMAX,
}


# --------------------------------------------------------------------- identity
@register_jitable(inline="always")
def identity_forward_loop(z, alpha, out):
    """A = Z."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = z[i, j]


def identity_forward_vec(z, alpha, out):
    """A = Z."""
    out[...] = z


@register_jitable
def identity_backward_loop(a, da, alpha, out):
    """dZ = dA."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = da[i, j]


def identity_backward_vec(a, da, alpha, out):
    """dZ = dA."""
    out[...] = da


# ---------------------------------------------------------------------- sigmoid
@register_jitable
def sigmoid_forward_loop(z, alpha, out):
    """A = 1 / (1 + exp(-Z)), evaluated without overflow for large |Z|."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = np.float64(z[i, j])
            if v >= 0.0:
                out[i, j] = 1.0 / (1.0 + math.exp(-v))
            else:
                e = math.exp(v)
                out[i, j] = e / (1.0 + e)


def sigmoid_forward_vec(z, alpha, out):
    """A = 1 / (1 + exp(-Z)), evaluated without overflow for large |Z|."""
    e = np.exp(-np.abs(z))
    np.divide(np.where(z >= 0, 1, e), 1 + e, out=out)


@register_jitable
def sigmoid_backward_loop(a, da, alpha, out):
    """dZ = dA * A (1 - A)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            s = np.float64(a[i, j])
            out[i, j] = np.float64(da[i, j]) * s * (1.0 - s)


def sigmoid_backward_vec(a, da, alpha, out):
    """dZ = dA * A (1 - A)."""
    np.multiply(da, a * (1 - a), out=out)


# ------------------------------------------------------------------------- tanh
@register_jitable
def tanh_forward_loop(z, alpha, out):
    """A = tanh(Z)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = math.tanh(np.float64(z[i, j]))


def tanh_forward_vec(z, alpha, out):
    """A = tanh(Z)."""
    np.tanh(z, out=out)


@register_jitable
def tanh_backward_loop(a, da, alpha, out):
    """dZ = dA * (1 - A^2)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            t = np.float64(a[i, j])
            out[i, j] = np.float64(da[i, j]) * (1.0 - t * t)


def tanh_backward_vec(a, da, alpha, out):
    """dZ = dA * (1 - A^2)."""
    np.multiply(da, 1 - a * a, out=out)


# ------------------------------------------------------------------------- relu
@register_jitable(inline="always")
def relu_forward_loop(z, alpha, out):
    """A = max(Z, 0); NaN stays NaN."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[i, j]
            out[i, j] = 0.0 if v <= 0.0 else v


def relu_forward_vec(z, alpha, out):
    """A = max(Z, 0); NaN stays NaN."""
    np.maximum(z, 0, out=out)


@register_jitable
def relu_backward_loop(a, da, alpha, out):
    """dZ = dA * [A > 0] (the derivative at 0 taken as 0, as PyTorch does)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = da[i, j] if a[i, j] > 0.0 else 0.0


def relu_backward_vec(a, da, alpha, out):
    """dZ = dA * [A > 0] (the derivative at 0 taken as 0, as PyTorch does)."""
    np.multiply(da, a > 0, out=out)


# ------------------------------------------------------------------- leaky relu
@register_jitable(inline="always")
def leaky_relu_forward_loop(z, alpha, out):
    """A = Z if Z > 0 else alpha Z."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = np.float64(z[i, j])
            out[i, j] = v if v > 0.0 else alpha * v


def leaky_relu_forward_vec(z, alpha, out):
    """A = Z if Z > 0 else alpha Z."""
    np.multiply(z, np.where(z > 0, 1, alpha).astype(z.dtype, copy=False), out=out)


@register_jitable
def leaky_relu_backward_loop(a, da, alpha, out):
    """dZ = dA if A > 0 else alpha dA (alpha > 0 keeps the sign of Z in A)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            d = np.float64(da[i, j])
            out[i, j] = d if a[i, j] > 0.0 else alpha * d


def leaky_relu_backward_vec(a, da, alpha, out):
    """dZ = dA if A > 0 else alpha dA (alpha > 0 keeps the sign of Z in A)."""
    np.multiply(da, np.where(a > 0, 1, alpha).astype(da.dtype, copy=False), out=out)


# ---------------------------------------------------------------------- softmax
@register_jitable
def row_max_sumexp(z, i, e):
    """``m = max_j Z_ij`` and ``s = sum_j exp(Z_ij - m)``: the overflow-free pieces of
    softmax (``exp(Z_ij - m) / s``) and of logsumexp (``m + log s``). Each
    ``exp(Z_ij - m)`` is also stored in ``e[i, j]`` (``e`` may be ``z``), so that a
    softmax needs one exponential per element, not two (the exponentials are most of
    its time: libm's, one at a time)."""
    m = np.float64(z[i, 0])
    for j in range(1, z.shape[1]):
        v = np.float64(z[i, j])
        if v > m:
            m = v
    s = 0.0
    for j in range(z.shape[1]):
        v = math.exp(np.float64(z[i, j]) - m)
        e[i, j] = v
        s += v
    return m, s


@register_jitable
def softmax_forward_loop(z, alpha, out):
    """A_ij = exp(Z_ij - max_k Z_ik) / sum_k exp(Z_ik - max_k Z_ik), row by row."""
    for i in range(z.shape[0]):
        m, s = row_max_sumexp(z, i, out)
        for j in range(z.shape[1]):
            out[i, j] = np.float64(out[i, j]) / s


def softmax_forward_vec(z, alpha, out):
    """A_ij = exp(Z_ij - max_k Z_ik) / sum_k exp(Z_ik - max_k Z_ik), row by row."""
    np.subtract(z, z.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)


@register_jitable
def softmax_backward_loop(a, da, alpha, out):
    """dZ_ij = A_ij (dA_ij - sum_k dA_ik A_ik)."""
    for i in range(a.shape[0]):
        dot = 0.0
        for j in range(a.shape[1]):
            dot += np.float64(da[i, j]) * np.float64(a[i, j])
        for j in range(a.shape[1]):
            out[i, j] = np.float64(a[i, j]) * (np.float64(da[i, j]) - dot)


def softmax_backward_vec(a, da, alpha, out):
    """dZ_ij = A_ij (dA_ij - sum_k dA_ik A_ik)."""
    dot = np.sum(da * a, axis=1, keepdims=True)
    np.multiply(a, da - dot, out=out)


# ------------------------------------------------------------ compiled forms
identity_forward_jit = jit(identity_forward_loop)
identity_backward_jit = jit(identity_backward_loop)
sigmoid_forward_jit = jit(sigmoid_forward_loop)
sigmoid_backward_jit = jit(sigmoid_backward_loop)
tanh_forward_jit = jit(tanh_forward_loop)
tanh_backward_jit = jit(tanh_backward_loop)
relu_forward_jit = jit(relu_forward_loop)
relu_backward_jit = jit(relu_backward_loop)
leaky_relu_forward_jit = jit(leaky_relu_forward_loop)
leaky_relu_backward_jit = jit(leaky_relu_backward_loop)
softmax_forward_jit = jit(softmax_forward_loop)
softmax_backward_jit = jit(softmax_backward_loop)


# ----------------------------------------------------------- dispatch by code
@register_jitable(inline="always")
def activation_forward_loop(code, z, alpha, out):
    """A = g(Z) for the activation numbered ``code`` (see ``CODES``)."""
    if code == IDENTITY:
        identity_forward_loop(z, alpha, out)
    elif code == SIGMOID:
        sigmoid_forward_loop(z, alpha, out)
    elif code == TANH:
        tanh_forward_loop(z, alpha, out)
    elif code == RELU:
        relu_forward_loop(z, alpha, out)
    elif code == LEAKY_RELU:
        leaky_relu_forward_loop(z, alpha, out)
    else:
        softmax_forward_loop(z, alpha, out)


@register_jitable
def activation_backward_loop(code, a, da, alpha, out):
    """dZ = dA * g'(Z) for the activation numbered ``code``, from A = g(Z)."""
    if code == IDENTITY:
        identity_backward_loop(a, da, alpha, out)
    elif code == SIGMOID:
        sigmoid_backward_loop(a, da, alpha, out)
    elif code == TANH:
        tanh_backward_loop(a, da, alpha, out)
    elif code == RELU:
        relu_backward_loop(a, da, alpha, out)
    elif code == LEAKY_RELU:
        leaky_relu_backward_loop(a, da, alpha, out)
    else:
        softmax_backward_loop(a, da, alpha, out)


#: name -> {form -> forward kernel ``(z, alpha, out)``}
ACTIVATIONS = {name: forms(globals(), f"{name}_forward") for name in CODES}
#: name -> {form -> backward kernel ``(a, da, alpha, out)``}
DERIVATIVES = {name: forms(globals(), f"{name}_backward") for name in CODES}
