"""fit's compiled epoch (kernels/epoch.py) against the Python loop it replaces.

For a stack of Dense layers ``_fit_epoch`` runs the full batches in one call of
``fit_epoch_jit``; the Python loop (``run_full_batches`` patched to decline) makes the
same kernel calls one at a time. Both must leave the same bits everywhere: weights,
optimizer state and counters, history, the divergence snapshot and message.
"""

import contextlib
import sys
import warnings

import numpy as np
import pytest

import fastnn as fn
import fastnn._epoch
import fastnn.model
from fastnn import optim


def _python_loop(monkeypatch):
    monkeypatch.setattr(fastnn.model, "run_full_batches", lambda *args: None)


def _data(loss, n, n_in, n_out, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    if loss == "softmax_cross_entropy":
        return X, rng.integers(0, n_out, n)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (n, n_out))
    return X, rng.standard_normal((n, n_out)).astype(dtype)


def _train(loss="softmax_cross_entropy", acts=("relu", "tanh"), dtype=np.float32,
           optimizer=("adam", {}), n=203, bs=16, epochs=2, n_out=3, l1=0.0, l2=0.0,
           seed=0, X=None, y=None, hidden=(8, 5)):
    """Fit a Dense stack; returns what a run leaves behind, for an exact comparison."""
    if X is None:
        X, y = _data(loss, n, 6, n_out, dtype, seed)
    widths = [X.shape[1], *hidden][:len(acts) + 1]
    layers = [fn.Dense(a, b, activation=act, alpha=0.1)
              for a, b, act in zip(widths[:-1], widths[1:], acts)]
    model = fn.Sequential(layers + [fn.Dense(widths[len(acts)], n_out)], seed=seed, dtype=dtype)
    name, kwargs = optimizer
    opt = optim.get_optimizer(name, model.parameters(), **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, y, loss=loss, optimizer=opt, epochs=epochs, batch_size=bs,
                            l1=l1, l2=l2)
    return {
        "weights": model._buffer.data.copy(),
        "grads": model._buffer.grad.copy(),
        "state": {k: v.copy() for k, v in opt.state.items()},
        "scalars": (opt.step_count, opt.skipped_steps, model.step, model._last_good.step,
                    *opt._scalar_state().values()),
        "history": history.history,
        "stopped": history.stopped_reason,
        "snapshot": [a.copy() for a in model._last_good.saved],
        "warnings": [str(w.message) for w in caught],
    }


def _assert_same(comp, ref):
    np.testing.assert_array_equal(comp["weights"], ref["weights"])
    np.testing.assert_array_equal(comp["grads"], ref["grads"])
    assert comp["state"].keys() == ref["state"].keys()
    for key in ref["state"]:
        np.testing.assert_array_equal(comp["state"][key], ref["state"][key], err_msg=key)
    assert comp["scalars"] == ref["scalars"]
    assert len(comp["snapshot"]) == len(ref["snapshot"])
    for got, want in zip(comp["snapshot"], ref["snapshot"]):
        np.testing.assert_array_equal(got, want)
    assert comp["history"] == ref["history"]
    assert comp["stopped"] == ref["stopped"]
    assert comp["warnings"] == ref["warnings"]


def _compare(monkeypatch, **kwargs):
    calls = []
    real = fastnn._epoch.run_full_batches

    def counting(*args):
        out = real(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(fastnn.model, "run_full_batches", counting)
    comp = _train(**kwargs)
    assert calls and all(calls), "the compiled epoch did not run"
    _python_loop(monkeypatch)
    ref = _train(**kwargs)
    _assert_same(comp, ref)
    return comp


OPTIMIZERS = [
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ("sgd", {"lr": 0.05, "momentum": 0.5, "dampening": 0.1, "maximize": True}),
    ("momentum", {"lr": 0.05, "bias_correction": True}),
    ("adagrad", {"lr": 0.05, "lr_decay": 0.01}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
    ("adadelta", {"lr": 1.0}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 1e-2, "clip_value": 0.05}),
    ("adamw", {"lr": 0.01, "clip_norm": 0.1}),
    ("adamax", {"lr": 0.01, "on_nonfinite": "apply"}),
    ("nadam", {"lr": 0.01}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: f"{o[0]}-{len(o[1])}")
def test_every_optimizer_same_bits_as_the_python_loop(monkeypatch, optimizer, dtype):
    out = _compare(monkeypatch, optimizer=optimizer, dtype=dtype)
    assert len(out["history"]["loss"]) == 2 and np.isfinite(out["history"]["loss"]).all()
    assert out["scalars"][0] == 2 * 13  # 203 samples in batches of 16: 12 full + 1 more


@pytest.mark.parametrize("loss,n_out", [("softmax_cross_entropy", 4),
                                        ("binary_cross_entropy", 2), ("mse", 2),
                                        ("quadratic", 1)])
@pytest.mark.parametrize("acts", [("relu", "tanh"), ("sigmoid", "leaky_relu"), ("identity",)])
def test_every_loss_and_activation_same_bits(monkeypatch, loss, n_out, acts):
    _compare(monkeypatch, loss=loss, n_out=n_out, acts=acts, dtype=np.float64)


def test_schedule_penalty_and_no_remainder_same_bits(monkeypatch):
    sched = fn.schedules.CosineDecay(0.05, 30)
    out = _compare(monkeypatch, optimizer=("sgd", {"lr": sched, "momentum": 0.9}), n=160,
                   bs=16, l1=1e-3, l2=1e-2, epochs=3)
    assert out["scalars"][0] == 30


def test_batch_of_one_same_bits(monkeypatch):
    _compare(monkeypatch, optimizer=("sgd", {"lr": 0.01}), n=40, bs=1)


def test_diverging_loss_stops_at_the_same_step(monkeypatch):
    out = _compare(monkeypatch, optimizer=("sgd", {"lr": 1e4}), loss="mse", acts=("relu",),
                   n_out=1, epochs=5)
    assert out["stopped"] is not None and "training diverged" in out["stopped"]
    assert np.isfinite(out["weights"]).all()


@pytest.mark.parametrize("n", [16 * 7, 16 * 7 + 5, 16 * 8, 16 * 8 + 5])
def test_odd_and_even_step_counts_same_bits(monkeypatch, n):
    """The compiled epoch alternates two parameter buffers, step by step: epochs of an
    odd or even number of full batches, with or without a last partial one (run by
    the Python loop), leave the Python loop's weights, state and snapshot."""
    out = _compare(monkeypatch, optimizer=("adam", {"lr": 0.01}), n=n, bs=16, epochs=3)
    assert out["scalars"][0] == 3 * -(-n // 16)


@pytest.mark.parametrize("bad,batch", [(21, 1), (15, 2), (24, 3), (33, 4)])
def test_infinite_loss_at_odd_and_even_steps_same_bits(monkeypatch, bad, batch):
    """Sample ``bad`` (an infinite squared error) sits in batch ``batch`` of this
    shuffle: the epoch stops there with the weights before the last update, whichever
    of the two buffers held them."""
    X = np.random.default_rng(1).standard_normal((40, 6))
    y = np.random.default_rng(2).standard_normal((40, 1))
    y[bad] = 1e300
    out = _compare(monkeypatch, optimizer=("adam", {"lr": 1e-2}), loss="mse",
                   acts=("relu",), n_out=1, bs=4, X=X, y=y, dtype=np.float64)
    assert f"batch {batch}: the loss became inf" in out["stopped"]
    # model.step and the snapshot's: the last step whose loss was finite (0 if none)
    assert out["scalars"][2:4] == (max(batch - 2, 0),) * 2
    np.testing.assert_array_equal(out["snapshot"][0], out["weights"])


@pytest.mark.parametrize("on_nonfinite", ["skip", "raise"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_overflow_with_a_finite_loss(monkeypatch, on_nonfinite, dtype):
    """Targets near float32's largest value: the float64 loss is finite, the float32
    dW = dZ^T A overflows. float64 never overflows: both paths train on."""
    rng = np.random.default_rng(0)
    X = (np.abs(rng.standard_normal((40, 6))) + 5).astype(dtype)
    y = np.full((40, 1), 3e38, dtype)
    kwargs = dict(optimizer=("sgd", {"lr": 1e-40, "on_nonfinite": on_nonfinite}),
                  loss="mse", acts=("relu",), n_out=1, bs=2, X=X, y=y, dtype=dtype)
    if on_nonfinite == "raise" and dtype == np.float32:
        with pytest.raises(FloatingPointError, match="step 0: the gradient has a NaN"):
            _train(**kwargs)
        _python_loop(monkeypatch)
        with pytest.raises(FloatingPointError, match="step 0: the gradient has a NaN"):
            _train(**kwargs)
        return
    out = _compare(monkeypatch, **kwargs)
    if dtype == np.float32:
        assert "the gradient became inf or NaN" in out["stopped"]
        assert out["scalars"][:3] == (0, 1, 0)  # no step taken, one skipped
        assert any("skipped step 0" in w for w in out["warnings"])
    else:
        assert out["stopped"] is None


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_gradient_overflow_after_some_steps(monkeypatch, l2):
    """A huge target overflows a later batch's float32 gradient: the epoch stops there
    with the weights, state and snapshot of the Python loop, whether the check runs on
    the gradient's shares as they are computed (no penalty) or after the L2 penalty
    has added to it."""
    rng = np.random.default_rng(1)
    X = (np.abs(rng.standard_normal((40, 6))) + 5).astype(np.float32)
    y = rng.standard_normal((40, 1)).astype(np.float32)
    y[31] = 3e38  # in the sixth batch of this shuffle
    out = _compare(monkeypatch, optimizer=("adam", {"lr": 1e-2}), loss="mse", acts=("relu",),
                   n_out=1, bs=4, X=X, y=y, l2=l2)
    assert "the gradient became inf or NaN" in out["stopped"]
    steps, skipped = out["scalars"][:2]
    assert steps > 0 and skipped == 1
    assert out["scalars"][3] == steps  # the snapshot: the weights before the bad step
    np.testing.assert_array_equal(out["snapshot"][0], out["weights"])


def test_declines_what_it_cannot_run(monkeypatch):
    """Layers other than Dense, probability-row targets, a non-JIT optimizer: the
    Python loop trains (and gets the same result as ever)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    soft = rng.random((64, 3)).astype(np.float32)
    soft /= soft.sum(axis=1, keepdims=True)
    cases = [
        (fn.Sequential([fn.Dense(5, 4), fn.ReLU(), fn.Dense(4, 3)]), soft.argmax(1), "jit"),
        (fn.Sequential([fn.Dense(5, 4, activation="relu"), fn.Dense(4, 3)]), soft, "jit"),
        (fn.Sequential([fn.Dense(5, 4, activation="relu"), fn.Dense(4, 3)]), soft.argmax(1),
         "vec"),
    ]
    for model, y, backend in cases:
        calls = []
        real = fastnn._epoch.run_full_batches
        monkeypatch.setattr(fastnn.model, "run_full_batches",
                            lambda *a: calls.append(real(*a)) or calls[-1])
        opt = optim.Adam(model.parameters(), lr=1e-2, backend=backend)
        hist = model.fit(X, y, loss="softmax_cross_entropy", optimizer=opt, epochs=2,
                         batch_size=16)
        assert calls == [None, None]
        assert hist.history["loss"][1] < hist.history["loss"][0]


@pytest.fixture
def two_threads():
    import numba

    pytest.importorskip("threadpoolctl")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    previous = fn.set_num_threads(2)
    yield
    fn.set_num_threads(previous)


def _epoch_arguments(monkeypatch, index):
    """Argument ``index`` of every compiled epoch run from now on (-2: ``units_first``,
    -3: ``wts``)."""
    seen = []
    real = fastnn._epoch.fit_epoch_jit

    def spy(*args, **kwargs):
        epoch = real(*args, **kwargs)
        return lambda *a: seen.append(a[index]) or epoch(*a)

    monkeypatch.setattr(fastnn._epoch, "fit_epoch_jit", spy)
    return seen


@pytest.mark.parametrize("units_first", [False, True])
@pytest.mark.parametrize("loss,n_out,acts", [("softmax_cross_entropy", 3, ("relu", "tanh")),
                                             ("binary_cross_entropy", 2, ("relu", "tanh")),
                                             ("mse", 1, ("relu", "tanh")), ("mse", 1, ())])
def test_batch_split_over_threads(monkeypatch, two_threads, loss, n_out, acts, units_first):
    """With two threads a batch of 32 runs as two parts of 16 rows side by side, then two
    shares of each layer's output units take dW and db over all 32 rows and update those
    units (shares start at a multiple of 16 units: the hidden layers' 40 and 36 units
    split 16 + 24 and 16 + 20; the few output units are all the second share's). With
    ``units_first`` (first-layer weights of at least ``UNITS_FIRST_BYTES``, here lowered
    to 0) the first layer's forward pass runs by those shares too (a lone layer with one
    unit: one share is empty). The products' blocking and form (X W^T, or X times the
    copy of W^T) and the parts' mean loss may round differently, so training matches the
    one-thread run to rounding, and itself to the bit."""
    seen = []
    real = fastnn._epoch._parts
    monkeypatch.setattr(fastnn._epoch, "_parts", lambda bs: seen.append(real(bs)) or seen[-1])
    if units_first:
        monkeypatch.setattr(fastnn._epoch, "UNITS_FIRST_BYTES", 0)
    flags = _epoch_arguments(monkeypatch, -2)
    kwargs = dict(loss=loss, n_out=n_out, acts=acts, dtype=np.float64,
                  optimizer=("adam", {"lr": 0.01}), bs=32, n=203, l2=1e-2, hidden=(40, 36))
    split = _train(**kwargs)
    assert seen and set(seen) == {2}
    assert flags and set(flags) == {units_first}
    _assert_same(_train(**kwargs), split)  # deterministic
    fn.set_num_threads(1)
    one = _train(**kwargs)
    assert set(seen) == {2, 1}
    assert flags[-1] is False  # one part: never by units
    np.testing.assert_allclose(split["weights"], one["weights"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(split["history"]["loss"], one["history"]["loss"], rtol=1e-12)
    if "accuracy" in one["history"]:
        assert split["history"]["accuracy"] == one["history"]["accuracy"]
    assert split["scalars"] == one["scalars"]


def test_unit_shares_start_at_multiples_of_16():
    from fastnn.kernels.epoch import _unit_span

    def shares(n, parts):
        return [_unit_span(n, t, parts) for t in range(parts)]

    assert shares(100, 2) == [(0, 48), (48, 100)]
    assert shares(40, 2) == [(0, 16), (16, 40)]
    assert shares(100, 3) == [(0, 32), (32, 64), (64, 100)]
    assert shares(256, 2) == [(0, 128), (128, 256)]
    assert shares(10, 2) == [(0, 0), (0, 10)]  # fewer than 32 units: one share
    assert shares(7, 1) == [(0, 7)]


@pytest.mark.parametrize("up_to,copied", [(0, []), (3840, [0, 2]), (10**6, [0, 1, 2])])
def test_split_batch_multiplies_by_a_copy_of_w_transposed(monkeypatch, two_threads, up_to,
                                                          copied):
    """A split batch's forward pass multiplies a part's rows by a copy of W^T, kept up to
    date by the shares that update W, for the layers whose part rows x inputs x outputs
    is at most ``TRANSPOSED_UP_TO`` (here 16 x 6 x 40 = 3840, 16 x 40 x 36 = 23040 and
    16 x 36 x 3 = 1728), by W for the others: training matches the one-thread run to
    rounding either way (a copy left stale after the first update would not)."""
    monkeypatch.setattr(fastnn._epoch, "TRANSPOSED_UP_TO", up_to)
    wts = _epoch_arguments(monkeypatch, -3)
    kwargs = dict(dtype=np.float64, optimizer=("adam", {"lr": 0.01}), bs=32, n=203,
                  hidden=(40, 36))
    split = _train(**kwargs)
    widths = [(6, 40), (40, 36), (36, 3)]
    assert len(wts) == 2 and all(  # one per epoch
        [w.shape for w in epoch] == [widths[k] if k in copied else (0, 0) for k in range(3)]
        for epoch in wts)
    fn.set_num_threads(1)
    one = _train(**kwargs)
    np.testing.assert_allclose(split["weights"], one["weights"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(split["history"]["loss"], one["history"]["loss"], rtol=1e-12)
    assert split["history"]["accuracy"] == one["history"]["accuracy"]


def test_batch_split_needs_parts_of_16_rows_and_blas_on_one_thread(monkeypatch, two_threads):
    assert [fastnn._epoch._parts(bs) for bs in (1, 16, 31, 32, 33, 128)] == [1, 1, 1, 2, 1, 2]
    # without threadpoolctl set_num_threads cannot pin BLAS (it warns): no split then
    monkeypatch.setattr(fastnn._config, "blas_pinned", lambda: False)
    assert fastnn._epoch._parts(128) == 1


def test_logistic_regression_one_layer_same_bits(monkeypatch):
    """The lecture's logistic regression: one Dense layer, binary cross-entropy, SGD."""
    out = _compare(monkeypatch, loss="binary_cross_entropy", acts=(), n_out=1,
                   optimizer=("sgd", {"lr": 0.5}), epochs=3)
    assert out["history"]["loss"][2] < out["history"]["loss"][0]


def _blas_threads():
    """The thread count of every BLAS loaded (threadpoolctl)."""
    import threadpoolctl

    return [m["num_threads"] for m in threadpoolctl.threadpool_info()
            if m["user_api"] == "blas"]


@pytest.fixture
def blas_on_two_threads():
    """BLAS on two threads for the test (skips where it cannot have two); yields their
    counts, and checks they are the same again after the test's fit."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401  the OpenBLAS numba's np.dot calls

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        if max(before) < 2:
            pytest.skip("BLAS has one thread here")
        yield before
        assert _blas_threads() == before


@pytest.mark.parametrize("width,one_thread", [(32, False), (128, True), (512, False)])
def test_small_products_run_blas_on_one_thread(monkeypatch, blas_on_two_threads, width,
                                               one_thread):
    """Without threads given, an epoch of a network whose largest product is below
    ``BLAS_SERIAL_BELOW`` multiply-adds holds BLAS to one thread while it runs (a second
    thread costs small products more than it gives), and gives BLAS its threads back
    after; a larger network leaves BLAS as it is, and so does one whose products
    OpenBLAS keeps on one thread anyway (below ``BLAS_SPLIT_FROM``)."""
    before = blas_on_two_threads
    real, seen = fastnn._epoch.fit_epoch_jit, []

    def recording(*args, **kwargs):
        epoch = real(*args, **kwargs)

        def call(*a):
            seen.append(_blas_threads())
            return epoch(*a)

        return call

    monkeypatch.setattr(fastnn._epoch, "fit_epoch_jit", recording)
    X, y = _data("softmax_cross_entropy", 64, width, 3, np.float32, 0)
    model = fn.Sequential([fn.Dense(width, width, activation="relu"),
                           fn.Dense(width, 3)], seed=0)
    # largest product: 32 rows x width x width multiply-adds: 33k, 524k or 8.4M
    model.fit(X, y, loss="softmax_cross_entropy", epochs=1, batch_size=32)
    assert _blas_threads() == before
    assert seen and all(threads == ([1] * len(before) if one_thread else before)
                        for threads in seen)


def test_small_products_without_threadpoolctl(monkeypatch):
    """Without threadpoolctl the compiled epoch runs with BLAS untouched, and trains as
    with it (these products are too small for OpenBLAS to split: the same bits)."""
    ref = _train()
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # its import fails
    monkeypatch.setattr(fastnn._config, "_controller", None)
    assert isinstance(fastnn._config.blas_one_thread(), contextlib.nullcontext)
    _assert_same(_train(), ref)


def test_small_products_python_loop_blas_on_one_thread(monkeypatch, blas_on_two_threads):
    """The hold covers the Python loop too (a model with a Dropout layer takes it)."""
    before = blas_on_two_threads
    seen = []
    real = fn.Sequential._train_step

    def recording(self, *args):
        seen.append(_blas_threads())
        return real(self, *args)

    monkeypatch.setattr(fn.Sequential, "_train_step", recording)
    X, y = _data("softmax_cross_entropy", 64, 128, 3, np.float32, 0)
    model = fn.Sequential([fn.Dense(128, 128, activation="relu"), fn.Dropout(0.1),
                           fn.Dense(128, 3)], seed=0)
    model.fit(X, y, loss="softmax_cross_entropy", epochs=1, batch_size=32)
    assert _blas_threads() == before
    assert len(seen) == 2 and all(threads == [1] * len(before) for threads in seen)


@pytest.mark.parametrize("dropout", [True, False])
def test_epoch_that_cannot_split_gives_blas_the_threads(monkeypatch, blas_on_two_threads,
                                                        two_threads, dropout):
    """With threads given, an epoch that cannot split its batches over them (a Dropout
    layer: the Python loop; or a Dense stack of 264k parameters, large enough for the
    threaded update: the compiled epoch, serial) runs as without threads given:
    fastnn's kernels serial, BLAS with the threads it had (on one thread such epochs
    took 1.4-1.6x as long). After fit the threads are
    fastnn's again, BLAS pinned; the run leaves the same bits as one without threads."""
    before = blas_on_two_threads
    seen = []  # (BLAS threads, fastnn threads) at each step (Python loop) or epoch call
    step, epoch = fn.Sequential._train_step, fastnn._epoch.fit_epoch_jit

    def recording_step(self, *args):
        seen.append((_blas_threads(), fastnn._config.threads()))
        return step(self, *args)

    def recording_epoch(*args, **kwargs):
        compiled = epoch(*args, **kwargs)

        def call(*a):
            seen.append((_blas_threads(), fastnn._config.threads()))
            return compiled(*a)

        return call

    monkeypatch.setattr(fn.Sequential, "_train_step", recording_step)
    monkeypatch.setattr(fastnn._epoch, "fit_epoch_jit", recording_epoch)
    X, y = _data("softmax_cross_entropy", 64, 512, 3, np.float32, 0)

    def train():
        middle = [fn.Dropout(0.1)] if dropout else []
        model = fn.Sequential([fn.Dense(512, 512, activation="relu"), *middle,
                               fn.Dense(512, 3)], seed=0)
        # largest product: 32 x 512 x 512 = 8.4M multiply-adds, above the hold for small ones
        model.fit(X, y, loss="softmax_cross_entropy", optimizer="adam", epochs=2,
                  batch_size=32)
        return model._buffer.data.copy()

    calls = 4 if dropout else 2  # 2 epochs of 2 steps; the Dense stack, once an epoch
    given = train()
    assert seen == [(before, 1)] * calls
    assert fastnn._config.threads() == 2 and _blas_threads() == [1] * len(before)
    fn.set_num_threads(1)
    seen.clear()
    np.testing.assert_array_equal(train(), given)
    assert seen == [(before, 1)] * calls


def test_set_num_threads_inside_threads_to_blas_stands(blas_on_two_threads, two_threads):
    before = blas_on_two_threads
    with fastnn._config.threads_to_blas():
        assert fastnn._config.threads() == 1 and _blas_threads() == before
    assert fastnn._config.threads() == 2 and _blas_threads() == [1] * len(before)
    with fastnn._config.threads_to_blas():
        fn.set_num_threads(1)  # the caller's choice, not undone on the way out
    assert fastnn._config.threads() == 1 and _blas_threads() == before
    with fastnn._config.threads_to_blas():  # nothing to lend
        assert fastnn._config.threads() == 1 and _blas_threads() == before
    assert _blas_threads() == before


def test_layer_offsets_must_tile_the_buffer():
    """The split epoch updates the buffer by each layer's W and b: where they start, and a
    clear error if they do not tile it (a parameter left out would never be updated)."""
    model = fn.Sequential([fn.Dense(3, 4), fn.Dense(4, 2)], seed=0)
    param = model._buffer.data
    offsets = fastnn._epoch._layer_offsets(param, model.layers)
    assert offsets.tolist() == [[0, 12], [16, 24]]
    with pytest.raises(RuntimeError, match="do not tile the parameter buffer"):
        fastnn._epoch._layer_offsets(param, model.layers[:1])
