"""Batch norm and layer norm: the three forms agree (loop and jit to the bit), match
the naive twins and PyTorch's golden values (BatchNorm1d over several training steps
and in evaluation, LayerNorm), stay right on data shifted by 1e8, pass finite
differences, switch between batch and running statistics with the model's mode, and
a network with dropout and batch norm learns the digits."""

import pathlib

import numpy as np
import pytest

import fastnn as fn
from fastnn.kernels.norm import (
    BATCHNORM_BACKWARD,
    BATCHNORM_FORWARD_EVAL,
    BATCHNORM_FORWARD_TRAIN,
    LAYERNORM_BACKWARD,
    LAYERNORM_FORWARD,
    coef_rows_backward,
    coef_rows_forward,
)

import reference

FORMS = ("loop", "vec", "jit")
SHAPES = [(1, 1), (1, 5), (4, 1), (2, 3), (9, 6)]
DTYPES = [np.float32, np.float64]
GOLDEN = np.load(pathlib.Path(__file__).parent / "fixtures" / "norm_golden.npz")


def _data(shape, dtype, seed=0, loc=0.5, scale=2.0):
    rng = np.random.default_rng(seed)
    n = shape[1]
    return (rng.normal(loc, scale, shape).astype(dtype), rng.uniform(0.5, 1.5, n).astype(dtype),
            rng.normal(0, 0.5, n).astype(dtype), rng.standard_normal(shape).astype(dtype))


def _bn_train(form, x, gamma, beta, momentum=0.1, eps=1e-5, running=None):
    n = x.shape[1]
    rm, rv = running if running is not None else (np.zeros(n, x.dtype), np.ones(n, x.dtype))
    mean, invstd, out = np.empty(n), np.empty(n), np.empty_like(x)
    BATCHNORM_FORWARD_TRAIN[form](x, gamma, beta, momentum, eps, rm, rv, mean, invstd, out)
    return out, rm, rv, mean, invstd


def _bn_eval(form, x, gamma, beta, rm, rv, eps=1e-5):
    n = x.shape[1]
    mean, invstd, out = np.empty(n), np.empty(n), np.empty_like(x)
    BATCHNORM_FORWARD_EVAL[form](x, gamma, beta, eps, rm, rv, mean, invstd, out)
    return out, mean, invstd


def _bn_backward(form, x, dy, gamma, mean, invstd, batch_stats=True):
    n = x.shape[1]
    dgamma, dbeta, dx = np.empty(n, x.dtype), np.empty(n, x.dtype), np.empty_like(x)
    BATCHNORM_BACKWARD[form](x, dy, gamma, mean, invstd, batch_stats, np.empty(n), np.empty(n),
                             dgamma, dbeta, dx)
    return dx, dgamma, dbeta


def _ln(form, x, gamma, beta, dy, eps=1e-5):
    m, n = x.shape
    mean, invstd, out = np.empty(m), np.empty(m), np.empty_like(x)
    LAYERNORM_FORWARD[form](x, gamma, beta, eps, mean, invstd, out)
    dgamma, dbeta, dx = np.empty(n, x.dtype), np.empty(n, x.dtype), np.empty_like(x)
    LAYERNORM_BACKWARD[form](x, dy, gamma, mean, invstd, np.empty(n), np.empty(n), dgamma,
                             dbeta, dx)
    return out, dx, dgamma, dbeta


def _agree(comp, dtype):
    """loop == jit to the bit; vec within rtol; returns the loop's results."""
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    for a, b, c in zip(comp["loop"], comp["jit"], comp["vec"]):
        np.testing.assert_array_equal(b, a)
        np.testing.assert_allclose(c, a, rtol=rtol, atol=rtol)
    return comp["loop"]


# -------------------------------------------------------- forms and twins
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_train_three_forms_and_twin(shape, dtype):
    x, gamma, beta, dy = _data(shape, dtype)
    comp = {}
    for form in FORMS:
        out, rm, rv, mean, invstd = _bn_train(form, x, gamma, beta)
        comp[form] = (out, rm, rv) + _bn_backward(form, x, dy, gamma, mean, invstd)
    out, rm, rv, dx, dgamma, dbeta = _agree(comp, dtype)
    ref_out, ref_mean, ref_unbiased = reference.batchnorm_forward(x, gamma, beta)
    ref_dx, ref_dgamma, ref_dbeta = reference.batchnorm_backward(x, dy, gamma)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dx, ref_dx, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dgamma, ref_dgamma, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dbeta, ref_dbeta, rtol=rtol, atol=rtol)
    if shape[0] > 1:
        np.testing.assert_allclose(rm, 0.1 * ref_mean, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(rv, 0.9 + 0.1 * ref_unbiased, rtol=rtol, atol=rtol)
    else:  # one sample: output beta, running estimates untouched
        np.testing.assert_array_equal(out, np.broadcast_to(beta, shape))
        np.testing.assert_array_equal(rm, 0)
        np.testing.assert_array_equal(rv, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_eval_three_forms(shape, dtype):
    x, gamma, beta, dy = _data(shape, dtype)
    rm = np.linspace(-1, 1, shape[1]).astype(dtype)
    rv = np.linspace(0.5, 2, shape[1]).astype(dtype)
    comp = {}
    for form in FORMS:
        out, mean, invstd = _bn_eval(form, x, gamma, beta, rm, rv)
        comp[form] = (out,) + _bn_backward(form, x, dy, gamma, mean, invstd, batch_stats=False)
    out, dx, dgamma, dbeta = _agree(comp, dtype)
    sigma = np.sqrt(rv.astype(np.float64) + 1e-5)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, gamma * (x - rm.astype(np.float64)) / sigma + beta,
                               rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dx, dy * (gamma / sigma), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_layernorm_three_forms_and_twin(shape, dtype):
    x, gamma, beta, dy = _data(shape, dtype)
    out, dx, dgamma, dbeta = _agree({form: _ln(form, x, gamma, beta, dy) for form in FORMS},
                                    dtype)
    ref_dx, ref_dgamma, ref_dbeta = reference.layernorm_backward(x, dy, gamma)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, reference.layernorm_forward(x, gamma, beta), rtol=rtol,
                               atol=rtol)
    np.testing.assert_allclose(dx, ref_dx, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dgamma, ref_dgamma, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dbeta, ref_dbeta, rtol=rtol, atol=rtol)


# ------------------------------------------------------------- golden values
@pytest.mark.parametrize("form", FORMS)
def test_batchnorm_matches_pytorch_over_steps_and_in_eval(form):
    g = GOLDEN
    gamma, beta = g["bn_gamma"], g["bn_beta"]
    n = gamma.size
    running = (np.zeros(n), np.ones(n))
    for k in range(3):
        x, dy = g[f"bn_x{k}"], g[f"bn_dy{k}"]
        out, rm, rv, mean, invstd = _bn_train(form, x, gamma, beta, float(g["bn_momentum"]),
                                              float(g["bn_eps"]), running)
        dx, dgamma, dbeta = _bn_backward(form, x, dy, gamma, mean, invstd)
        for name, comp in (("out", out), ("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta),
                           ("running_mean", rm), ("running_var", rv)):
            np.testing.assert_allclose(comp, g[f"bn_{name}{k}"], rtol=1e-10, atol=1e-12,
                                       err_msg=f"step {k}: {name}")
    out, mean, invstd = _bn_eval(form, g["bn_x_eval"], gamma, beta, *running)
    dx, _, _ = _bn_backward(form, g["bn_x_eval"], g["bn_dy_eval"], gamma, mean, invstd, False)
    np.testing.assert_allclose(out, g["bn_out_eval"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, g["bn_dx_eval"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_layernorm_matches_pytorch(form):
    g = GOLDEN
    out, dx, dgamma, dbeta = _ln(form, g["ln_x"], g["ln_gamma"], g["ln_beta"], g["ln_dy"],
                                 float(g["ln_eps"]))
    for name, comp in (("out", out), ("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)):
        np.testing.assert_allclose(comp, g[f"ln_{name}"], rtol=1e-10, atol=1e-12, err_msg=name)


def test_batchnorm_layer_matches_pytorch_in_a_model():
    """The layer in a float64 model: training steps update the running estimates as
    PyTorch's; evaluation mode uses them."""
    g = GOLDEN
    bn = fn.BatchNorm(5, momentum=float(g["bn_momentum"]), eps=float(g["bn_eps"]))
    model = fn.Sequential([bn], dtype="float64")
    bn.gamma[...] = g["bn_gamma"]
    bn.beta[...] = g["bn_beta"]
    model.train()
    for k in range(3):
        np.testing.assert_allclose(model(g[f"bn_x{k}"]), g[f"bn_out{k}"], rtol=1e-10, atol=1e-12)
        model.backward(g[f"bn_dy{k}"])
        np.testing.assert_allclose(bn.dgamma, g[f"bn_dgamma{k}"], rtol=1e-10, atol=1e-12)
    state = bn.extra_state()
    np.testing.assert_allclose(state["running_mean"], g["bn_running_mean2"], rtol=1e-10)
    np.testing.assert_allclose(state["running_var"], g["bn_running_var2"], rtol=1e-10)
    model.eval()
    np.testing.assert_allclose(model(g["bn_x_eval"]), g["bn_out_eval"], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ stability
@pytest.mark.parametrize("form", FORMS)
def test_variance_right_on_data_shifted_by_1e8(form):
    x, gamma, beta, dy = _data((16, 3), np.float64, seed=3, loc=0.0, scale=1.0)
    shifted = x + 1e8
    ref_out, rm, rv, _, _ = _bn_train(form, x, gamma, beta)
    comp_out, comp_rm, comp_rv, _, _ = _bn_train(form, shifted, gamma, beta)
    # x + 1e8 is stored to within 7.5e-9, so the normalized values agree to ~1e-7
    np.testing.assert_allclose(comp_out, ref_out, atol=1e-6)
    np.testing.assert_allclose(comp_rv, rv, rtol=1e-6)
    ln_ref = _ln(form, x.T.copy(), gamma[:1].repeat(16), beta[:1].repeat(16), dy.T.copy())[0]
    ln_comp = _ln(form, shifted.T.copy(), gamma[:1].repeat(16), beta[:1].repeat(16),
                  dy.T.copy())[0]
    np.testing.assert_allclose(ln_comp, ln_ref, atol=1e-6)
    # the one-pass formula E[x^2] - E[x]^2 the test guards against is wrong here
    naive = (shifted**2).mean(axis=0) - shifted.mean(axis=0) ** 2
    assert np.max(np.abs(naive - x.var(axis=0))) > 0.1


@pytest.mark.parametrize("form", FORMS)
def test_float32_batchnorm_far_from_zero(form):
    """float32 data 1000 standard deviations from zero: the statistics are float64 and
    the elementwise passes subtract the mean rounded to float32, so the normalized
    values stay within the data's own quantization (ulp(1000) = 6e-5)."""
    x, gamma, beta, dy = _data((64, 7), np.float32, seed=6, loc=1000.0, scale=1.0)
    out, _, _, mean, invstd = _bn_train(form, x, gamma, beta)
    dx, dgamma, _ = _bn_backward(form, x, dy, gamma, mean, invstd)
    ref_out, _, _ = reference.batchnorm_forward(x, gamma, beta)
    ref_dx, ref_dgamma, _ = reference.batchnorm_backward(x, dy, gamma)
    np.testing.assert_allclose(out, ref_out, atol=1e-4)
    np.testing.assert_allclose(dx, ref_dx, atol=1e-4)
    np.testing.assert_allclose(dgamma, ref_dgamma, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(37, 5), (16, 3), (3, 2)])  # rows not a multiple of 4 or 16
def test_batchnorm_scratch_given_or_allocated_agree(shape):
    x, gamma, beta, dy = _data(shape, np.float32, seed=7)
    n = shape[1]
    out_a, _, _, mean, invstd = _bn_train("jit", x, gamma, beta)
    dx_a = _bn_backward("jit", x, dy, gamma, mean, invstd)
    out_b, mean_b, invstd_b = np.empty_like(x), np.empty(n), np.empty(n)
    BATCHNORM_FORWARD_TRAIN["jit"](x, gamma, beta, 0.1, 1e-5, np.zeros(n, np.float32),
                                   np.ones(n, np.float32), mean_b, invstd_b, out_b,
                                   np.full((coef_rows_forward(shape[0]), n), np.nan, np.float32))
    dx_b = (np.empty_like(x), np.empty(n, np.float32), np.empty(n, np.float32))
    BATCHNORM_BACKWARD["jit"](x, dy, gamma, mean_b, invstd_b, True, np.empty(n), np.empty(n),
                              dx_b[1], dx_b[2], dx_b[0],
                              np.full((coef_rows_backward(shape[0]), n), np.nan, np.float32))
    np.testing.assert_array_equal(out_b, out_a)
    for a, b in zip(dx_b, dx_a):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("form", ["loop", "jit"])  # the NumPy form takes no scratch
def test_batchnorm_scratch_too_small_is_refused(form):
    """coef holds the per-feature constants and each group of 16 rows' column sums: one
    sized for fewer rows (here (2, n) and (4, n), what the kernels took before) raises."""
    x, gamma, beta, dy = _data((37, 5), np.float32, seed=7)
    n = 5
    assert (coef_rows_forward(37), coef_rows_backward(37)) == (5, 10)  # 3 groups of rows
    with pytest.raises(ValueError, match="coef_rows_forward"):
        BATCHNORM_FORWARD_TRAIN[form](x, gamma, beta, 0.1, 1e-5, np.zeros(n, np.float32),
                                      np.ones(n, np.float32), np.empty(n), np.empty(n),
                                      np.empty_like(x), np.empty((2, n), np.float32))
    with pytest.raises(ValueError, match="coef_rows_backward"):
        BATCHNORM_BACKWARD[form](x, dy, gamma, np.zeros(n), np.ones(n), True, np.empty(n),
                                 np.empty(n), np.empty(n, np.float32), np.empty(n, np.float32),
                                 np.empty_like(x), np.empty((4, n), np.float32))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_serial_and_parallel_compilations_agree(threads, dtype):
    """The JIT forms' parallel compilations (fastnn given threads, from
    _config.PARALLEL_MIN elements) split the rows' groups of 16 over numba's threads;
    the groups' sums are added in the same order whoever computed them: the same bits
    as the serial compilation and the loop, at any thread count."""
    import numba

    x, gamma, beta, dy = _data((300, 70), dtype, seed=11)
    forward, backward = BATCHNORM_FORWARD_TRAIN["jit"], BATCHNORM_BACKWARD["jit"]
    runs = {}
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        for name, f, b in [("serial", forward.serial, backward.serial),
                           ("parallel", forward.parallel, backward.parallel),
                           ("loop", BATCHNORM_FORWARD_TRAIN["loop"], BATCHNORM_BACKWARD["loop"])]:
            n = x.shape[1]
            rm, rv = np.zeros(n, dtype), np.ones(n, dtype)
            mean, invstd, out = np.empty(n), np.empty(n), np.empty_like(x)
            f(x, gamma, beta, 0.1, 1e-5, rm, rv, mean, invstd, out)
            dgamma, dbeta, dx = np.empty(n, dtype), np.empty(n, dtype), np.empty_like(x)
            b(x, dy, gamma, mean, invstd, True, np.empty(n), np.empty(n), dgamma, dbeta, dx)
            runs[name] = (out, rm, rv, mean, invstd, dx, dgamma, dbeta)
    finally:
        numba.set_num_threads(before)
    for name in ("parallel", "loop"):
        for got, want in zip(runs[name], runs["serial"]):
            np.testing.assert_array_equal(got, want, err_msg=name)


# --------------------------------------------------------- finite differences
def _fd_check(f, analytic, arr):
    numeric = fn.numerical_gradient(f, arr, eps=1e-6)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_finite_differences_of_input_gamma_beta(norm):
    x, gamma, beta, r = _data((5, 4), np.float64, seed=4)
    if norm == "batch":
        def out():
            return _bn_train("jit", x, gamma, beta)[0]
        _, _, _, mean, invstd = _bn_train("jit", x, gamma, beta)
        dx, dgamma, dbeta = _bn_backward("jit", x, r, gamma, mean, invstd)
    else:
        def out():
            return _ln("jit", x, gamma, beta, r)[0]
        _, dx, dgamma, dbeta = _ln("jit", x, gamma, beta, r)

    def f():
        return float(np.sum(out() * r))  # dJ/dout = r

    _fd_check(f, dx, x)
    _fd_check(f, dgamma, gamma)
    _fd_check(f, dbeta, beta)


@pytest.mark.parametrize("layer", [lambda: fn.BatchNorm(5), lambda: fn.LayerNorm(5)])
def test_gradcheck_through_a_model(layer):
    model = fn.Sequential([fn.Dense(3, 5), layer(), fn.Tanh(), fn.Dense(5, 3)], dtype="float64",
                          seed=1)
    rng = np.random.default_rng(5)
    for p in model.parameters():  # move gamma, beta off 1, 0
        p += rng.normal(0, 0.3, p.shape)
    X = rng.standard_normal((7, 3))
    result = fn.gradcheck(model, X, np.arange(7) % 3, loss="softmax_cross_entropy",
                          rtol=1e-6, atol=1e-8)
    assert result.ok, (result.max_abs_error, result.max_rel_error)


# ---------------------------------------------------------------- layer, modes
def _bn_model(backend="jit"):
    return fn.Sequential([fn.Dense(4, 6), fn.BatchNorm(6), fn.ReLU(), fn.Dense(6, 3)],
                         dtype="float64", backend=backend)


def test_running_statistics_follow_the_mode():
    model = _bn_model()
    bn = model.layers[1]
    X = np.random.default_rng(6).normal(2.0, 3.0, (30, 4))
    y = np.arange(30) % 3
    before = [a.copy() for a in bn.extra_state().values()]
    model.fit(X, y, loss="softmax_cross_entropy", epochs=1, batch_size=10,
              validation_data=(X, y))
    assert model.training is False
    after = [a.copy() for a in bn.extra_state().values()]
    assert not np.array_equal(before[0], after[0])
    model.predict(X)
    model.evaluate(X, y)
    for a, b in zip(after, bn.extra_state().values()):
        np.testing.assert_array_equal(a, b)  # evaluation never moves them
    model.loss_and_grad(X, y)
    assert not np.array_equal(after[0], bn.running_mean)
    # eval output is the affine map of the running estimates, whatever the batch
    z = model.layers[0].forward(X[:1], False).copy()
    expected = bn.gamma * (z - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) + bn.beta
    np.testing.assert_allclose(bn.forward(z, False), expected, rtol=1e-12)


def test_extra_state_is_live_and_loads_back():
    model = _bn_model()
    bn = model.layers[1]
    state = bn.extra_state()
    assert state["running_mean"] is bn.running_mean
    bn.load_extra_state({"running_mean": np.arange(6.0), "running_var": np.full(6, 4.0)})
    np.testing.assert_array_equal(bn.running_mean, np.arange(6.0))
    with pytest.raises(ValueError, match="shape"):
        bn.load_extra_state({"running_mean": np.zeros(5), "running_var": np.ones(6)})
    with pytest.raises(ValueError, match="expected"):
        bn.load_extra_state({"running_mean": np.zeros(6)})
    weights = model.get_weights()
    assert len(weights) == 3
    model.flat_parameters[...] = 0
    bn.running_var[...] = 9
    model.set_weights(weights)
    np.testing.assert_array_equal(bn.running_var, 4.0)
    np.testing.assert_array_equal(model.flat_parameters, weights[0])


def test_gamma_beta_live_in_the_flat_buffer_unregularized():
    model = _bn_model()
    bn = model.layers[1]
    assert np.shares_memory(bn.gamma, model.flat_parameters)
    assert model.regularized == [True, False, False, False, True, False]
    np.testing.assert_array_equal(bn.gamma, 1)
    np.testing.assert_array_equal(bn.beta, 0)


def test_layernorm_works_on_one_sample_and_ignores_the_mode():
    model = fn.Sequential([fn.Dense(3, 4), fn.LayerNorm(4)], dtype="float64")
    x = np.random.default_rng(7).standard_normal((1, 3))
    a = model.train()(x)
    np.testing.assert_array_equal(a, model.eval()(x))
    np.testing.assert_allclose(a.mean(), 0, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_features": 0}, "n_features"), ({"n_features": 3, "momentum": 1.5}, "momentum"),
    ({"n_features": 3, "eps": 0}, "eps"), ({"n_features": 2.5}, "n_features"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn.BatchNorm(**kwargs)


def test_width_mismatch_is_refused():
    with pytest.raises(ValueError, match="normalizes 5 features"):
        fn.Sequential([fn.Dense(3, 4), fn.BatchNorm(5)])


# ------------------------------------------------------------------ training
def test_dropout_and_batchnorm_network_learns_digits():
    """Stated accuracy: >= 95% on 397 held-out digits after 15 epochs (reached: 98.5%)."""
    X, y = fn.datasets.load_digits()
    X = X / 16
    idx = np.random.default_rng(0).permutation(len(X))
    X, y = X[idx], y[idx]
    model = fn.Sequential([fn.Dense(64, 128), fn.BatchNorm(128), fn.ReLU(), fn.Dropout(0.3),
                           fn.Dense(128, 10)], seed=0)
    model.fit(X[:1400], y[:1400], loss="softmax_cross_entropy", epochs=15, batch_size=32,
              optimizer=fn.optim.SGD(model.parameters(), lr=0.1))
    assert model.evaluate(X[1400:], y[1400:])["accuracy"] >= 0.95
