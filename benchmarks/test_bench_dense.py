"""Dense layer, forward A = relu(X W^T + b) and backward dW, db, dX, in every form.

Forms: ``loop`` (the textbook triple loop run by Python), ``loop_jit`` (that same
loop compiled by numba, no BLAS), ``vec`` (NumPy: BLAS, then the epilogue as
separate array passes), ``jit`` (BLAS called inside numba with bias and activation
fused around it: what ``Sequential`` runs) and ``torch`` (the same ops with ``out=``).
"""

import numpy as np
import pytest
from _common import FORMS, Size, ids, random

from fastnn.kernels.activations import CODES
from fastnn.kernels import dense

RELU = CODES["relu"]
ALPHA = 0.01
EMPTY = {np.float32: np.empty((0, 0), np.float32), np.float64: np.empty((0, 0), np.float64)}

# (m samples, n_in, n_out)
SIZES = [
    Size("m=64 64->32", (64, 64, 32)),
    Size("m=256 784->128", (256, 784, 128), loop=False),
    Size("m=512 512->512", (512, 512, 512), loop=False),
]
DTYPES = [np.float32, np.float64]
ALL_FORMS = FORMS + ("loop_jit", "torch")


def _layer(size, dtype):
    m, n_in, n_out = size.shape
    x = random((m, n_in), dtype, seed=1)
    w = random((n_out, n_in), dtype, seed=2) * np.sqrt(2.0 / n_in).astype(dtype)
    b = random((n_out,), dtype, seed=3)
    return x, w, b


def _label(size, dtype):
    return Size(f"{size.label} {np.dtype(dtype).name}", size.shape, size.loop)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("form", ALL_FORMS)
def test_dense_forward(bench, request, form, size, dtype):
    x, w, b = _layer(size, dtype)
    out = np.empty((x.shape[0], w.shape[0]), dtype)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        tx, tw, tb, tout = (torch.from_numpy(a) for a in (x, w, b, out))

        def fn():
            torch.addmm(tb, tx, tw.t(), out=tout)
            torch.clamp_(tout, min=0)
    else:
        kernel = dense.dense_forward_loop_jit if form == "loop_jit" else dense.DENSE_FORWARD[form]

        def fn():
            kernel(x, w, b, RELU, ALPHA, out)

    bench(form, "dense_forward", _label(size, dtype), fn)
    ref = np.maximum(x.astype(np.float64) @ w.T.astype(np.float64) + b, 0)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("form", ALL_FORMS)
def test_dense_backward(bench, request, form, size, dtype):
    x, w, b = _layer(size, dtype)
    m, n_in, n_out = size.shape
    a = np.maximum(x @ w.T + b, 0).astype(dtype)
    da = random((m, n_out), dtype, seed=4)
    dz = np.empty_like(da)
    dw = np.empty_like(w)
    db = np.empty_like(b)
    dx = np.empty_like(x)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        ta, tda, tx, tw, tdz, tdw, tdb, tdx = (
            torch.from_numpy(v) for v in (a, da, x, w, dz, dw, db, dx))

        def fn():
            torch.mul(tda, ta > 0, out=tdz)
            torch.mm(tdz.t(), tx, out=tdw)
            torch.sum(tdz, 0, out=tdb)
            torch.mm(tdz, tw, out=tdx)
    else:
        kernel = (dense.dense_backward_loop_jit if form == "loop_jit"
                  else dense.DENSE_BACKWARD[form])

        def fn():
            kernel(x, w, a, da, RELU, ALPHA, dz, dw, db, dx)

    bench(form, "dense_backward", _label(size, dtype), fn)
    dz64 = da.astype(np.float64) * (a > 0)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(dw, dz64.T @ x, rtol=tol, atol=tol * m)
    np.testing.assert_allclose(dx, dz64 @ w, rtol=tol, atol=tol * n_out)
    np.testing.assert_allclose(db, dz64.sum(axis=0), rtol=tol, atol=tol * m)
