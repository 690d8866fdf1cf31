"""Batch norm (training mode) and layer norm, forward and backward, in every form.

The forward normalizes with two-pass float64 statistics; the backward recomputes
Z_norm from the saved mean and 1/sigma. The torch peers are ``F.batch_norm``
(training, running statistics updated) and ``F.layer_norm``; their backward is
autograd's (``out.backward(dy)`` on a graph built once, outside the timing).
float32 data, as a model holds it.
"""

import numpy as np
import pytest
from _common import FORMS, Size, ids, random

from fastnn.kernels.norm import (
    BATCHNORM_BACKWARD,
    BATCHNORM_FORWARD_TRAIN,
    LAYERNORM_BACKWARD,
    LAYERNORM_FORWARD,
)

EPS = 1e-5
MOMENTUM = 0.1
# (m samples, n features)
SIZES = [
    Size("256x128", (256, 128)),
    Size("4096x1024", (4096, 1024), loop=False),
]
NORMS = ["batchnorm", "layernorm"]


def _inputs(size):
    m, n = size.shape
    x = random(size.shape, seed=1, low=-2, high=3)
    gamma = random((n,), seed=2, low=0.5, high=1.5)
    beta = random((n,), seed=3)
    return x, gamma, beta


def _stats_shape(norm, size):
    return (size.shape[1],) if norm == "batchnorm" else (size.shape[0],)


def _forward(norm, form, x, gamma, beta, mean, invstd, out):
    """The fastnn forward kernel's call, with fresh running estimates for batch norm."""
    if norm == "batchnorm":
        n = x.shape[1]
        running_mean, running_var = np.zeros(n, x.dtype), np.ones(n, x.dtype)
        kernel = BATCHNORM_FORWARD_TRAIN[form]
        return kernel, (x, gamma, beta, MOMENTUM, EPS, running_mean, running_var, mean, invstd,
                        out)
    return LAYERNORM_FORWARD[form], (x, gamma, beta, EPS, mean, invstd, out)


def _torch_forward(torch, norm, tx, tgamma, tbeta):
    F = torch.nn.functional
    if norm == "batchnorm":
        n = tx.shape[1]
        running_mean, running_var = torch.zeros(n), torch.ones(n)
        return lambda: F.batch_norm(tx, running_mean, running_var, tgamma, tbeta, True,
                                    MOMENTUM, EPS)
    return lambda: F.layer_norm(tx, (tx.shape[1],), tgamma, tbeta, EPS)


def _reference(norm, x, gamma, beta):
    x64 = x.astype(np.float64)
    axis = 0 if norm == "batchnorm" else 1
    mu = x64.mean(axis=axis, keepdims=True)
    var = ((x64 - mu) ** 2).mean(axis=axis, keepdims=True)
    return gamma * (x64 - mu) / np.sqrt(var + EPS) + beta


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_norm_forward(bench, request, form, norm, size):
    bench.check(form, f"{norm}_forward", size)
    x, gamma, beta = _inputs(size)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        fn = _torch_forward(torch, norm, *(torch.from_numpy(a) for a in (x, gamma, beta)))
        out = bench(form, f"{norm}_forward", size, fn).numpy()
    else:
        out = np.empty_like(x)
        mean, invstd = np.empty(_stats_shape(norm, size)), np.empty(_stats_shape(norm, size))
        kernel, args = _forward(norm, form, x, gamma, beta, mean, invstd, out)
        bench(form, f"{norm}_forward", size, kernel, *args)
    np.testing.assert_allclose(out, _reference(norm, x, gamma, beta), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_norm_backward(bench, request, form, norm, size):
    bench.check(form, f"{norm}_backward", size)
    x, gamma, beta = _inputs(size)
    m, n = size.shape
    dy = random(size.shape, seed=4)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        tx, tgamma, tbeta = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, gamma, beta))
        out = _torch_forward(torch, norm, tx, tgamma, tbeta)()
        tdy = torch.from_numpy(dy)

        def fn():
            tx.grad = tgamma.grad = tbeta.grad = None
            out.backward(tdy, retain_graph=True)

        bench(form, f"{norm}_backward", size, fn)
        dx, dgamma, dbeta = (t.grad.numpy() for t in (tx, tgamma, tbeta))
    else:
        mean, invstd = np.empty(_stats_shape(norm, size)), np.empty(_stats_shape(norm, size))
        kernel, args = _forward(norm, "vec", x, gamma, beta, mean, invstd, np.empty_like(x))
        kernel(*args)
        acc_dy, acc_dyx = np.empty(n), np.empty(n)
        dgamma, dbeta, dx = np.empty_like(gamma), np.empty_like(beta), np.empty_like(x)
        if norm == "batchnorm":
            bench(form, f"{norm}_backward", size, BATCHNORM_BACKWARD[form], x, dy, gamma, mean,
                  invstd, True, acc_dy, acc_dyx, dgamma, dbeta, dx)
        else:
            bench(form, f"{norm}_backward", size, LAYERNORM_BACKWARD[form], x, dy, gamma, mean,
                  invstd, acc_dy, acc_dyx, dgamma, dbeta, dx)
    # reference: the backward formula in float64 from scratch
    axis = 0 if norm == "batchnorm" else 1
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    mu = x64.mean(axis=axis, keepdims=True)
    inv = 1 / np.sqrt(((x64 - mu) ** 2).mean(axis=axis, keepdims=True) + EPS)
    xn = (x64 - mu) * inv
    g = dy64 * gamma
    ref_dx = inv * (g - g.mean(axis=axis, keepdims=True)
                    - xn * (g * xn).mean(axis=axis, keepdims=True))
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dgamma, (dy64 * xn).sum(axis=0), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dbeta, dy64.sum(axis=0), rtol=1e-4, atol=1e-3)
