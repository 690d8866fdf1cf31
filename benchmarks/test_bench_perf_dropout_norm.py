"""Issue 8's dropout and batch-norm targets, in one run, against PyTorch and NumPy.

* ``perf_dropout_forward[256x4096]``: inverted dropout, rate 0.2, float32. fastnn's JIT
  kernel (counter-based mask, stored as uint8 for the backward), serial (``jit``, fastnn
  given no threads) and on numba's threads (``jit_threads``, given them by
  ``fn.set_num_threads``: 1M elements, above ``_config.PARALLEL_MIN``), against
  ``torch.nn.functional.dropout(x, 0.2, training=True)`` and the NumPy idiom
  ``x * (rng.random(shape, float32) >= 0.2) * 1.25``. Target: 40 x torch.
* ``perf_batchnorm_train[256x1024]``: batch norm in training, forward then backward,
  float32. fastnn's two kernels with the layer's workspaces, serial (``jit``) and on
  numba's threads (``jit_threads``, groups of 16 rows split over them), against
  ``torch.nn.BatchNorm1d`` forward plus autograd backward (the graph is rebuilt each
  call, as in a training step). Target: 1.5 x torch.
* ``perf_alternation[128x784x256]``: a training-like alternation, ten times an njit
  kernel calling ``np.dot`` (128x784 @ 784x256, BLAS) then dropout on its 128x256
  output. ``jit`` is what fastnn runs (dropout's serial compilation below
  ``_config.PARALLEL_MIN`` or unless ``_config.set_num_threads`` gave fastnn threads),
  ``jit_parallel`` forces dropout onto numba's threads: with BLAS on two threads too,
  the two pools fight and the step is many times slower.
* ``dropout_norm_in_turn[dropout|batchnorm]``: the same forms timed in turn, each once a
  round (dropout 5 calls in a row, batch norm 20), ratios printed under the tables
  (``_common.time_in_turn``): a form's rounds one after another in its group meet a
  shared machine in different moods.

The issue's numbers are for two threads::

    FASTNN_BENCH_THREADS=2 python -m pytest benchmarks/test_bench_perf_dropout_norm.py \\
        --benchmark-enable --benchmark-json=perf.json

The plain ``python -m pytest benchmarks/test_bench_perf_dropout_norm.py`` is a smoke run
(timing off, every body once). torch forms are skipped when torch is not installed.
"""

import numpy as np
import pytest
from _common import (IN_TURN, THREADS, InTurn, Size, forms_here, give_threads, random,
                     time_in_turn)

from fastnn._config import jit
from fastnn.kernels.dropout import DROPOUT_FORWARD, dropout_forward_jit
from fastnn.kernels.norm import (
    BATCHNORM_BACKWARD,
    BATCHNORM_FORWARD_TRAIN,
    coef_rows_backward,
    coef_rows_forward,
)
from fastnn.kernels.random import keep_threshold

RATE = 0.2
SCALE = 1.0 / (1.0 - RATE)
KEY = np.uint64(0x9E3779B97F4A7C15)
EPS, MOMENTUM = 1e-5, 0.1

DROPOUT = Size("256x4096", (256, 4096), loop=False)
BATCHNORM = Size("256x1024", (256, 1024), loop=False)
ALTERNATION = Size("128x784x256", (128, 784, 256), loop=False)
STEPS = 10


def _info(bench):
    bench.benchmark.extra_info["threads"] = THREADS


# --------------------------------------------------------------------- dropout
def _dropout_data():
    return (random(DROPOUT.shape, seed=1),)


def _dropout_form(request, form, x):
    """Inverted dropout of ``x`` in ``form``, as ``(call, result)``: ``result(last)`` is
    the output and the kept elements after the call that returned ``last``."""
    if form == "torch":
        torch = request.getfixturevalue("torch")
        F, tx = torch.nn.functional, torch.from_numpy(x)

        def torch_result(last):
            out = last.numpy()
            return out, out != 0

        return lambda: F.dropout(tx, RATE, True), torch_result
    if form == "numpy":
        rng = np.random.default_rng(0)
        scale = np.float32(SCALE)

        def numpy_dropout():
            return x * (rng.random(x.shape, dtype=np.float32) >= RATE) * scale

        return numpy_dropout, lambda out: (out, out != 0)
    out, mask = np.empty_like(x), np.empty(x.shape, np.uint8)
    threshold = keep_threshold(RATE)
    return (lambda: DROPOUT_FORWARD["jit"](x, KEY, 7, threshold, SCALE, mask, out),
            lambda _: (out, mask.astype(bool)))


@pytest.mark.parametrize("form", ["jit", "jit_threads", "torch", "numpy"])
def test_perf_dropout_forward(bench, request, form):
    (x,) = _dropout_data()
    if form == "jit_threads":
        give_threads(request)  # from _config.PARALLEL_MIN elements: numba's threads
    call, result = _dropout_form(request, form, x)
    out, kept = result(bench(form, "perf_dropout_forward", DROPOUT, call))
    if form.startswith("jit"):
        ref_mask = np.empty(x.shape, np.uint8)
        DROPOUT_FORWARD["vec"](x, KEY, 7, keep_threshold(RATE), SCALE, ref_mask,
                               np.empty_like(x))
        np.testing.assert_array_equal(kept, ref_mask.astype(bool))
    _info(bench)
    np.testing.assert_allclose(out[kept], x[kept] * SCALE, rtol=2.5e-7)
    assert np.all(out[~kept] == 0)
    assert abs(kept.mean() - (1 - RATE)) < 5 * np.sqrt(RATE * (1 - RATE) / x.size)


# ------------------------------------------------------------------ batch norm
def _bn_data():
    m, n = BATCHNORM.shape
    x = random((m, n), seed=1, low=-2, high=3)
    dy = random((m, n), seed=4)
    gamma = random((n,), seed=2, low=0.5, high=1.5)
    beta = random((n,), seed=3)
    return x, dy, gamma, beta


def _bn_form(request, form, x, dy, gamma, beta):
    """Batch norm's training forward then backward in ``form``, as ``(call, result)``:
    ``result(last)`` is the output, dx and dgamma after the call that returned ``last``."""
    m, n = x.shape
    if form == "torch":
        torch = request.getfixturevalue("torch")
        layer = torch.nn.BatchNorm1d(n, eps=EPS, momentum=MOMENTUM)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(gamma))
            layer.bias.copy_(torch.from_numpy(beta))
        tx = torch.from_numpy(x.copy()).requires_grad_()
        tdy = torch.from_numpy(dy)

        def torch_step():
            tx.grad = layer.weight.grad = layer.bias.grad = None
            out = layer(tx)
            out.backward(tdy)
            return out

        return torch_step, lambda out: (out.detach().numpy(), tx.grad.numpy(),
                                        layer.weight.grad.numpy())
    forward, backward = BATCHNORM_FORWARD_TRAIN["jit"], BATCHNORM_BACKWARD["jit"]
    running_mean, running_var = np.zeros(n, np.float32), np.ones(n, np.float32)
    mean, invstd, acc_dy, acc_dyx = (np.empty(n) for _ in range(4))
    out, dx = np.empty_like(x), np.empty_like(x)
    dgamma, dbeta = np.empty_like(gamma), np.empty_like(beta)
    coef_f = np.empty((coef_rows_forward(m), n), np.float32)
    coef_b = np.empty((coef_rows_backward(m), n), np.float32)

    def step():
        forward(x, gamma, beta, MOMENTUM, EPS, running_mean, running_var, mean, invstd,
                out, coef_f)
        backward(x, dy, gamma, mean, invstd, True, acc_dy, acc_dyx, dgamma, dbeta, dx,
                 coef_b)

    return step, lambda _: (out, dx, dgamma)


@pytest.mark.parametrize("form", ["jit", "jit_threads", "torch"])
def test_perf_batchnorm_train(bench, request, form):
    x, dy, gamma, beta = _bn_data()
    if form == "jit_threads":
        give_threads(request)  # from _config.PARALLEL_MIN elements: numba's threads
    call, result = _bn_form(request, form, x, dy, gamma, beta)
    out, dx, dgamma = result(bench(form, "perf_batchnorm_train", BATCHNORM, call))
    _info(bench)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    mu = x64.mean(axis=0)
    inv = 1 / np.sqrt(((x64 - mu) ** 2).mean(axis=0) + EPS)
    xn = (x64 - mu) * inv
    g = dy64 * gamma
    np.testing.assert_allclose(out, gamma * xn + beta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, inv * (g - g.mean(axis=0) - xn * (g * xn).mean(axis=0)),
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dgamma, (dy64 * xn).sum(axis=0), rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------ in turn
#: What ``dropout_norm_in_turn`` times, per kernel: its size, its data, its forms' call
#: maker, its forms, its rounds, the calls in a row a round and the ratios its target
#: names (torch / fastnn given threads).
IN_TURN_KERNELS = {
    "dropout": (DROPOUT, _dropout_data, _dropout_form,
                ("jit_threads", "jit", "numpy", "torch"), 10, 5,
                (("torch", "jit_threads"), ("torch", "jit"), ("numpy", "jit_threads"))),
    "batchnorm": (BATCHNORM, _bn_data, _bn_form, ("jit_threads", "jit", "torch"), 10, 20,
                  (("torch", "jit_threads"), ("torch", "jit"))),
}


@pytest.mark.parametrize("kernel", list(IN_TURN_KERNELS))
def test_dropout_norm_in_turn(benchmark, request, kernel):
    size, data, make, forms, rounds, repeat, ratios = IN_TURN_KERNELS[kernel]
    threaded = ("jit_threads",)
    forms = forms_here(forms, threaded, {"torch": "torch"})
    args = data()
    steps = {form: make(request, form, *args)[0] for form in forms}
    benchmark.group = f"dropout_norm_in_turn[{kernel} {size}]"
    best, done = time_in_turn(benchmark, steps, rounds, threaded, repeat)
    IN_TURN.append(InTurn(
        f"dropout and batch norm timed in turn, {size}",
        "jit_threads is fastnn given the threads, jit without (the targets: torch/"
        "jit_threads at least 40 for dropout, 1.5 for batch norm)",
        kernel, done, best, tuple((f, f) for f in forms), ratios))


# ------------------------------------------------------------------ threading
def _dense_loop(a, w, out):
    out[...] = np.dot(a, w)


_dense = jit(_dense_loop)  # np.dot in an njit kernel calls BLAS (scipy's OpenBLAS)


@pytest.mark.parametrize("form", ["jit", "jit_parallel"])
def test_perf_alternation(bench, form):
    """BLAS and numba's thread pool take turns, as in a training step."""
    m, k, n = ALTERNATION.shape
    a, w = random((m, k), seed=5), random((k, n), seed=6)
    h, out = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
    mask = np.empty((m, n), np.uint8)
    drop = dropout_forward_jit if form == "jit" else dropout_forward_jit.parallel
    threshold = keep_threshold(RATE)

    def steps():
        for s in range(STEPS):
            _dense(a, w, h)
            drop(h, KEY, s, threshold, SCALE, mask, out)

    bench(form, "perf_alternation", ALTERNATION, steps)
    _info(bench)
    ref_mask = np.empty_like(mask)
    DROPOUT_FORWARD["vec"](h, KEY, STEPS - 1, threshold, SCALE, ref_mask, np.empty_like(h))
    np.testing.assert_array_equal(mask, ref_mask)  # same mask serial or threaded
