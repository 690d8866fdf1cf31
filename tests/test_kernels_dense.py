"""Dense forward and backward: the loop, its compilation, NumPy and the BLAS JIT form."""

import numpy as np
import pytest

from fastnn.kernels.activations import CODES
from fastnn.kernels.dense import (
    DENSE_BACKWARD,
    DENSE_FORWARD,
    dense_backward_loop_jit,
    dense_forward_loop_jit,
)

import reference

SHAPES = [(1, 1, 1), (1, 5, 3), (6, 1, 4), (7, 9, 1), (16, 12, 10)]  # (m, n_in, n_out)
DTYPES = [np.float32, np.float64]
ALPHA = 0.1


def _data(m, n_in, n_out, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n_in)).astype(dtype)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    da = rng.standard_normal((m, n_out)).astype(dtype)
    return x, w, b, da


def _fwd(kernel, x, w, b, act):
    out = np.empty((x.shape[0], w.shape[0]), dtype=x.dtype)
    kernel(x, w, b, CODES[act], ALPHA, out)
    return out


def _bwd(kernel, x, w, a, da, act, need_dx=True):
    dz = np.empty_like(da)
    dw = np.empty_like(w)
    db = np.empty(w.shape[0], dtype=w.dtype)
    dx = np.empty_like(x) if need_dx else np.empty((0, 0), dtype=x.dtype)
    kernel(x, w, a, da, CODES[act], ALPHA, dz, dw, db, dx)
    return dz, dw, db, dx


def _tol(dtype):
    return dict(rtol=1e-11, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("act", sorted(CODES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_forms_agree(shape, dtype, act):
    x, w, b, _ = _data(*shape, dtype)
    ref_a = reference.activation(act, reference.dense_forward(x, w, b), ALPHA)
    comp_loop = _fwd(DENSE_FORWARD["loop"], x, w, b, act)
    comp_loop_jit = _fwd(dense_forward_loop_jit, x, w, b, act)
    np.testing.assert_array_equal(comp_loop_jit, comp_loop)
    for form in ("vec", "jit"):
        comp = _fwd(DENSE_FORWARD[form], x, w, b, act)
        assert comp.dtype == dtype
        np.testing.assert_allclose(comp, comp_loop, **_tol(dtype))
    np.testing.assert_allclose(comp_loop, ref_a, **_tol(dtype))


@pytest.fixture(scope="module")
def forward_t():
    """``dense_forward_t`` compiled (fit's split epoch calls it from compiled code)."""
    from numba import njit

    from fastnn.kernels.dense import dense_forward_t

    return njit(dense_forward_t)


@pytest.mark.parametrize("act", ["identity", "relu", "tanh", "softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(50, 100, 100)])
def test_forward_from_a_copy_of_w_transposed(forward_t, shape, dtype, act):
    """``dense_forward_t`` given W^T's copy: the same layer as the other forms."""
    x, w, b, _ = _data(*shape, dtype)
    comp_t = _fwd(lambda x, w, *rest: forward_t(x, np.ascontiguousarray(w.T), *rest),
                  x, w, b, act)
    assert comp_t.dtype == dtype
    np.testing.assert_allclose(comp_t, _fwd(DENSE_FORWARD["loop"], x, w, b, act), **_tol(dtype))
    ref_a = reference.activation(act, reference.dense_forward(x, w, b), ALPHA)
    np.testing.assert_allclose(comp_t, ref_a, **_tol(dtype))


@pytest.mark.parametrize("act", ["identity", "relu", "tanh", "softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_forms_agree(shape, dtype, act):
    x, w, b, da = _data(*shape, dtype)
    a = _fwd(DENSE_FORWARD["loop"], x, w, b, act)
    z = reference.dense_forward(x, w, b)
    ref_dz = reference.activation_jacobian_vjp(act, z, da, ALPHA)
    ref_dw, ref_db, ref_dx = reference.dense_backward(x, w, ref_dz)
    comp_loop = _bwd(DENSE_BACKWARD["loop"], x, w, a, da, act)
    comp_loop_jit = _bwd(dense_backward_loop_jit, x, w, a, da, act)
    for c, l in zip(comp_loop_jit, comp_loop):
        np.testing.assert_array_equal(c, l)
    for form in ("vec", "jit"):
        for c, l in zip(_bwd(DENSE_BACKWARD[form], x, w, a, da, act), comp_loop):
            assert c.dtype == dtype
            np.testing.assert_allclose(c, l, **_tol(dtype))
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    for c, r in zip(comp_loop, (ref_dz, ref_dw, ref_db, ref_dx)):
        np.testing.assert_allclose(c, r, **tol)


@pytest.mark.parametrize("form", ["loop", "vec", "jit"])
def test_backward_skips_input_gradient(form):
    x, w, b, da = _data(4, 3, 2, np.float64)
    a = _fwd(DENSE_FORWARD[form], x, w, b, "relu")
    full = _bwd(DENSE_BACKWARD[form], x, w, a, da, "relu")
    part = _bwd(DENSE_BACKWARD[form], x, w, a, da, "relu", need_dx=False)
    assert part[3].size == 0
    for c, l in zip(part[:3], full[:3]):
        np.testing.assert_array_equal(c, l)


@pytest.mark.parametrize("form", ["loop", "vec", "jit"])
def test_dz_may_alias_da(form):
    x, w, b, da = _data(5, 4, 3, np.float64)
    a = _fwd(DENSE_FORWARD[form], x, w, b, "sigmoid")
    expected = _bwd(DENSE_BACKWARD[form], x, w, a, da, "sigmoid")
    da2 = da.copy()
    dw, db, dx = np.empty_like(w), np.empty(3), np.empty_like(x)
    DENSE_BACKWARD[form](x, w, a, da2, CODES["sigmoid"], ALPHA, da2, dw, db, dx)
    for c, e in zip((da2, dw, db, dx), expected):
        np.testing.assert_allclose(c, e, rtol=1e-14)


def test_dense_gradients_match_central_differences():
    """J = sum(dA * g(X W^T + b)); its gradient in W, b, X by nudging each entry."""
    x, w, b, da = _data(3, 4, 5, np.float64, seed=7)
    act = "tanh"
    a = _fwd(DENSE_FORWARD["jit"], x, w, b, act)
    _, dw, db, dx = _bwd(DENSE_BACKWARD["jit"], x, w, a, da, act)

    def J():
        return float(np.sum(da * _fwd(DENSE_FORWARD["jit"], x, w, b, act)))

    import fastnn as fn

    np.testing.assert_allclose(dw, fn.numerical_gradient(J, w, eps=1e-6), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(db, fn.numerical_gradient(J, b, eps=1e-6), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dx, fn.numerical_gradient(J, x, eps=1e-6), rtol=1e-6, atol=1e-9)
