"""Losses on logits with their gradients: three forms, naive twins, finite differences,
stability for large logits, and the lecture's worked example."""

import numpy as np
import pytest

from fastnn.kernels.losses import LOSS_KERNELS

import reference

DTYPES = [np.float32, np.float64]
SHAPES = [(1, 2), (1, 1), (5, 3), (9, 1), (8, 10)]


def _call(name, form, z, y, *extra):
    grad = np.empty_like(z)
    loss = LOSS_KERNELS[name][form](z, y, *extra, grad)
    return float(loss), grad


def _case(name, shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    m, k = shape
    z = (rng.standard_normal(shape) * 2).astype(dtype)
    if name == "softmax_cross_entropy":
        y = rng.integers(0, k, m)
        return z, y, (), lambda: reference.softmax_cross_entropy(z, y)
    if name == "softmax_cross_entropy_soft":
        t = rng.random(shape).astype(dtype)
        t /= t.sum(axis=1, keepdims=True)
        zz = z.astype(np.float64)
        lse = np.log(np.exp(zz - zz.max(1, keepdims=True)).sum(1, keepdims=True)) + zz.max(1, keepdims=True)
        p = np.exp(zz - lse)
        return z, t, (), lambda: (float(np.sum(t * (lse - zz)) / m), (p - t) / m)
    if name == "binary_cross_entropy":
        y = rng.integers(0, 2, shape).astype(dtype)
        return z, y, (), lambda: reference.binary_cross_entropy(z, y)
    y = rng.standard_normal(shape).astype(dtype)
    if name == "quadratic":
        return z, y, (), lambda: reference.quadratic(z, y)
    extra = (1.0 / z.size,) if name == "squared_error" else ()
    return z, y, extra, lambda: reference.mse(z, y)


NAMES = sorted(LOSS_KERNELS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name,shape",
    [(n, s) for n in NAMES for s in SHAPES if not (n.startswith("softmax") and s[1] == 1)],
)
def test_three_forms_agree(name, shape, dtype):
    z, y, extra, ref = _case(name, shape, dtype)
    ref_loss, ref_grad = ref()
    l_loop, g_loop = _call(name, "loop", z, y, *extra)
    l_jit, g_jit = _call(name, "jit", z, y, *extra)
    l_vec, g_vec = _call(name, "vec", z, y, *extra)
    assert l_jit == l_loop
    np.testing.assert_array_equal(g_jit, g_loop)
    assert g_loop.dtype == g_vec.dtype == dtype
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(l_vec, l_loop, **tol)
    np.testing.assert_allclose(g_vec, g_loop, **tol)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(l_loop, ref_loss, rtol=rtol)
    np.testing.assert_allclose(g_loop, ref_grad, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
    z, y, extra, _ = _case(name, (4, 3), np.float64, seed=5)
    _, grad = _call(name, "jit", z, y, *extra)
    import fastnn as fn

    num = fn.numerical_gradient(lambda: _call(name, "jit", z, y, *extra)[0], z, eps=1e-6)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("form", ["loop", "vec", "jit"])
def test_stable_for_large_logits(form):
    z = np.array([[1e4, -1e4], [-1e4, 1e4], [800.0, -800.0]], dtype=np.float32)
    loss, grad = _call("softmax_cross_entropy", form, z, np.array([0, 0, 1]))
    np.testing.assert_allclose(loss, (0 + 2e4 + 1600) / 3, rtol=1e-6)
    np.testing.assert_allclose(grad, [[0, 0], [-1 / 3, 1 / 3], [1 / 3, -1 / 3]], atol=1e-7)
    zb = np.array([[1e4], [-1e4], [-1e4]], dtype=np.float32)
    loss, grad = _call("binary_cross_entropy", form, zb, np.array([[1.0], [0.0], [1.0]], np.float32))
    np.testing.assert_allclose(loss, 1e4 / 3, rtol=1e-6)
    np.testing.assert_allclose(grad[:, 0], [0, 0, -1 / 3], atol=1e-7)


def test_quadratic_cost_is_the_lectures_half_sum():
    """C = 1/(2n) sum_x ||y(x) - a||^2 equals k/2 times mse for k outputs."""
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    c, g = _call("squared_error", "jit", z, y, 0.5 / 6)
    ref_c, ref_g = reference.quadratic(z, y)
    np.testing.assert_allclose(c, ref_c, rtol=1e-14)
    np.testing.assert_allclose(g, ref_g, rtol=1e-14)
    mse, _ = _call("squared_error", "jit", z, y, 1 / z.size)
    np.testing.assert_allclose(c, mse * 3 / 2, rtol=1e-14)


def test_lecture_worked_example_logistic_gradient():
    """X = [[2, -3, 8, 14], [6, 4, 17, 19]] (features x samples), Y = [0, 1, 1, 1],
    A = [0.8, 0.6, 0.9, 0.7]: dw2 = 1/4 sum (A - Y) x2 = -1.05 as the lecture prints.

    The lecture prints dw1 = -1.15, but its second term is a sign slip:
    (0.6 - 1) * (-3) = +1.2, not -1.2, so dw1 = 1/4 (1.6 + 1.2 - 0.8 - 4.2) = -0.55.
    fastnn computes the equation, not the slip; the test pins both facts."""
    terms = (np.array([0.8, 0.6, 0.9, 0.7]) - [0, 1, 1, 1]) * [2, -3, 8, 14]
    np.testing.assert_allclose(terms, [1.6, 1.2, -0.8, -4.2])  # lecture: [1.6, -1.2, -0.8, -4.2]
    np.testing.assert_allclose((terms * [1, -1, 1, 1]).sum() / 4, -1.15)  # the printed value
    from fastnn.kernels.activations import CODES
    from fastnn.kernels.dense import DENSE_BACKWARD

    X = np.array([[2.0, -3, 8, 14], [6, 4, 17, 19]]).T  # fastnn: samples are rows
    Y = np.array([[0.0], [1], [1], [1]])
    A = np.array([[0.8], [0.6], [0.9], [0.7]])
    Z = np.log(A / (1 - A))  # the logits whose sigmoid is A
    for form in ("loop", "vec", "jit"):
        _, dz = _call("binary_cross_entropy", form, Z, Y)
        np.testing.assert_allclose(dz, (A - Y) / 4, rtol=1e-12)  # dZ = A - Y, with the 1/m
        w = np.zeros((1, 2))
        dw, db, dx = np.empty((1, 2)), np.empty(1), np.empty((0, 0))
        DENSE_BACKWARD[form](X, w, Z, dz, CODES["identity"], 0.0, np.empty_like(dz), dw, db, dx)
        np.testing.assert_allclose(dw[0], [-0.55, -1.05], rtol=1e-12)
        np.testing.assert_allclose(db, [0.0], atol=1e-15)  # db = 1/4 (0.8 - 0.4 - 0.1 - 0.3) = 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_count_correct_three_forms(dtype):
    from fastnn.kernels.losses import COUNT_KERNELS

    rng = np.random.default_rng(0)
    z = rng.standard_normal((50, 4)).astype(dtype)
    z[0] = 1.0  # a tie: the first maximum wins, as in np.argmax
    y = rng.integers(0, 4, 50)
    y[0] = 0
    ref = sum(int(np.argmax(z[i]) == y[i]) for i in range(50))
    for form in ("loop", "vec", "jit"):
        assert COUNT_KERNELS["count_correct"][form](z, y) == ref
    yb = rng.integers(0, 2, (50, 4)).astype(dtype)
    ref_b = sum(int((z[i, j] > 0) == (yb[i, j] > 0.5)) for i in range(50) for j in range(4))
    for form in ("loop", "vec", "jit"):
        assert COUNT_KERNELS["count_correct_binary"][form](z, yb) == ref_b
