"""The hot training path allocates nothing per step once warmed up (issue: performance).

tracemalloc sees every allocation NumPy and Python make. After one warm-up step per
batch size (workspaces are created on first use, the JIT compiles), a hundred more
steps must leave the traced memory where it was (to within numba's own small cache)
and never raise its peak by as much as the smallest per-step array would take.
"""

import tracemalloc

import numpy as np
import pytest

import fastnn as fn
from fastnn.model import _Snapshot


def _model(with_norms):
    layers = [fn.Dense(20, 32, activation=None if with_norms else "relu")]
    if with_norms:
        layers += [fn.BatchNorm(32), fn.ReLU(), fn.Dropout(0.2)]
    layers += [fn.Dense(32, 16, activation="tanh"), fn.LayerNorm(16) if with_norms else fn.Identity(),
               fn.Dense(16, 5)]
    return fn.Sequential(layers, seed=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
@pytest.mark.parametrize("with_norms", [False, True])
def test_training_step_allocates_nothing(with_norms, optimizer):
    rng = np.random.default_rng(0)
    bs = 256
    X = rng.standard_normal((bs, 20)).astype(np.float32)
    y = rng.integers(0, 5, bs)
    model = _model(with_norms)
    loss = model._set_loss("softmax_cross_entropy")
    X, target = model._prepare(X, y, loss)
    opt = fn.optim.get_optimizer(optimizer, model.parameters(), lr=1e-3)
    model._last_good = _Snapshot(model._state_arrays(), model.step)  # as fit sets it up
    model.train()
    for _ in range(3):  # warm-up: compile, create the workspaces
        assert model._train_step(X, target, loss, opt)[0] is not None
    smallest_array = bs * 5 * 4  # the logits' gradient, the smallest per-step array
    tracemalloc.start()
    try:
        for _ in range(300):  # numba's dispatcher fills a small cache (~4 KiB) of its own
            model._train_step(X, target, loss, opt)
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(100):
            model._train_step(X, target, loss, opt)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # numba's dispatcher keeps a small cache of its own that breathes by a few hundred
    # bytes; one kept array per step would be 100 x 5 KiB
    assert after - before < 1024, f"{after - before} bytes kept over 100 steps"
    assert peak - before < smallest_array, f"a step's peak allocation is {peak - before} bytes"
