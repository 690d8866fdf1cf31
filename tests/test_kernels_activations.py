"""Activations and their derivatives: three forms agree, match the naive twins, and the
derivatives match central finite differences."""

import numpy as np
import pytest

from fastnn.kernels.activations import ACTIVATIONS, CODES, DERIVATIVES

import reference

NAMES = sorted(CODES)
SHAPES = [(1, 1), (1, 7), (5, 1), (13, 6)]
DTYPES = [np.float32, np.float64]
ALPHA = 0.05


def _z(shape, dtype, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _forward(name, form, z):
    out = np.empty_like(z)
    ACTIVATIONS[name][form](z, ALPHA, out)
    return out


def _backward(name, form, a, da):
    out = np.empty_like(a)
    DERIVATIVES[name][form](a, da, ALPHA, out)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_three_forms_agree(name, shape, dtype):
    z = _z(shape, dtype)
    ref_a = reference.activation(name, z, ALPHA)
    comp_loop = _forward(name, "loop", z)
    comp_jit = _forward(name, "jit", z)
    comp_vec = _forward(name, "vec", z)
    assert comp_loop.dtype == comp_jit.dtype == comp_vec.dtype == dtype
    np.testing.assert_array_equal(comp_jit, comp_loop)  # the same loop, compiled: to the bit
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(comp_vec, comp_loop, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(comp_loop, ref_a, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_backward_three_forms_agree(name, shape, dtype):
    z = _z(shape, dtype)
    da = _z(shape, dtype, seed=1, scale=1.0)
    a = _forward(name, "loop", z)
    ref_dz = reference.activation_jacobian_vjp(name, z, da, ALPHA)
    comp_loop = _backward(name, "loop", a, da)
    comp_jit = _backward(name, "jit", a, da)
    comp_vec = _backward(name, "vec", a, da)
    np.testing.assert_array_equal(comp_jit, comp_loop)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(comp_vec, comp_loop, rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-14)
    # the derivative written in terms of A equals the one written in terms of Z
    tol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(comp_loop, ref_dz, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_central_differences(name):
    """d/dZ of sum(g(Z) * dA), by nudging each Z_ij by +-eps (the lecture's 0.001 idea)."""
    z = _z((4, 5), np.float64, seed=3)
    z[np.abs(z) < 1e-3] = 0.5  # keep away from the kink of relu / leaky relu
    da = _z((4, 5), np.float64, seed=4, scale=1.0)
    comp = _backward(name, "jit", _forward(name, "jit", z), da)
    eps = 1e-6
    ref = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        ref[idx] = (np.sum(_forward(name, "jit", zp) * da) - np.sum(_forward(name, "jit", zm) * da)) / (2 * eps)
    np.testing.assert_allclose(comp, ref, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("form", ["loop", "vec", "jit"])
def test_large_inputs_do_not_overflow(form):
    z = np.array([[-1e4, -800.0, 0.0, 800.0, 1e4]], dtype=np.float32)
    sig = _forward("sigmoid", form, z)
    np.testing.assert_array_equal(sig, [[0.0, 0.0, 0.5, 1.0, 1.0]])
    sm = _forward("softmax", form, z)
    assert np.all(np.isfinite(sm))
    np.testing.assert_allclose(sm, [[0, 0, 0, 0, 1]], atol=1e-30)
    np.testing.assert_array_equal(_forward("tanh", form, z), [[-1, -1, 0, 1, 1]])


@pytest.mark.parametrize("form", ["loop", "vec", "jit"])
def test_relu_values_and_nan(form):
    z = np.array([[-2.0, 0.0, 3.0, np.nan]])
    np.testing.assert_array_equal(_forward("relu", form, z), [[0.0, 0.0, 3.0, np.nan]])
    np.testing.assert_allclose(_forward("leaky_relu", form, z[:, :3]), [[-2 * ALPHA, 0.0, 3.0]])


@pytest.mark.parametrize("form", ["loop", "vec", "jit"])
def test_out_may_alias_input(form):
    z = _z((3, 4), np.float64)
    for name in NAMES:
        expected = _forward(name, form, z)
        inplace = z.copy()
        ACTIVATIONS[name][form](inplace, ALPHA, inplace)
        np.testing.assert_array_equal(inplace, expected)
