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

The issue's numbers are for two threads::

    FASTNN_BENCH_THREADS=2 python -m pytest benchmarks/test_bench_perf_dropout_norm.py \\
        --benchmark-enable --benchmark-json=perf.json

The plain ``python -m pytest benchmarks/test_bench_perf_dropout_norm.py`` is a smoke run
(timing off, every body once). torch forms are skipped when torch is not installed.
"""

import numpy as np
import pytest
from _common import THREADS, Size, give_threads, random

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
@pytest.mark.parametrize("form", ["jit", "jit_threads", "torch", "numpy"])
def test_perf_dropout_forward(bench, request, form):
    x = random(DROPOUT.shape, seed=1)
    if form == "jit_threads":
        give_threads(request)  # from _config.PARALLEL_MIN elements: numba's threads
    if form == "torch":
        torch = request.getfixturevalue("torch")
        F = torch.nn.functional
        out = bench(form, "perf_dropout_forward", DROPOUT, F.dropout, torch.from_numpy(x),
                    RATE, True).numpy()
        kept = out != 0
    elif form == "numpy":
        rng = np.random.default_rng(0)
        scale = np.float32(SCALE)

        def numpy_dropout():
            return x * (rng.random(x.shape, dtype=np.float32) >= RATE) * scale

        out = bench(form, "perf_dropout_forward", DROPOUT, numpy_dropout)
        kept = out != 0
    else:
        out, mask = np.empty_like(x), np.empty(x.shape, np.uint8)
        bench(form, "perf_dropout_forward", DROPOUT, DROPOUT_FORWARD["jit"], x, KEY, 7,
              keep_threshold(RATE), SCALE, mask, out)
        kept = mask.astype(bool)
        ref_mask = np.empty_like(mask)
        DROPOUT_FORWARD["vec"](x, KEY, 7, keep_threshold(RATE), SCALE, ref_mask,
                               np.empty_like(x))
        np.testing.assert_array_equal(mask, ref_mask)
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


@pytest.mark.parametrize("form", ["jit", "jit_threads", "torch"])
def test_perf_batchnorm_train(bench, request, form):
    x, dy, gamma, beta = _bn_data()
    m, n = x.shape
    if form == "jit_threads":
        give_threads(request)  # from _config.PARALLEL_MIN elements: numba's threads
    if form == "torch":
        torch = request.getfixturevalue("torch")
        layer = torch.nn.BatchNorm1d(n, eps=EPS, momentum=MOMENTUM)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(gamma))
            layer.bias.copy_(torch.from_numpy(beta))
        tx = torch.from_numpy(x.copy()).requires_grad_()
        tdy = torch.from_numpy(dy)

        def step():
            tx.grad = layer.weight.grad = layer.bias.grad = None
            out = layer(tx)
            out.backward(tdy)
            return out

        out = bench(form, "perf_batchnorm_train", BATCHNORM, step).detach().numpy()
        dx, dgamma = tx.grad.numpy(), layer.weight.grad.numpy()
    else:
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

        bench(form, "perf_batchnorm_train", BATCHNORM, step)
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
