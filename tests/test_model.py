"""Sequential end to end: the public API of the core issue, golden values from PyTorch,
gradient checks through every layer, training, reproducibility and bad input."""

import json
import os

import numpy as np
import pytest

import fastnn as fn
import fastnn.params

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
BACKENDS = ["loop", "vec", "jit"]


def _golden():
    with np.load(os.path.join(FIXTURES, "core_golden.npz"), allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    meta = json.loads(str(data["meta"]))
    return data, meta


GOLDEN, GOLDEN_META = _golden()


def _build(layers, backend="jit", dtype="float64", alpha=0.01, seed=0):
    return fn.Sequential([fn.Dense(i, o, activation=a, alpha=alpha) for i, o, a in layers],
                         seed=seed, dtype=dtype, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", [c["name"] for c in GOLDEN_META["cases"]])
def test_loss_and_gradients_equal_pytorch_autograd(case, backend):
    meta = next(c for c in GOLDEN_META["cases"] if c["name"] == case)
    model = _build(meta["layers"], backend, alpha=GOLDEN_META["alpha"])
    for p, i in zip(model.parameters(), range(meta["n_params"])):
        p[...] = GOLDEN[f"{case}/param{i}"]
    comp_loss = model.loss_and_grad(GOLDEN[f"{case}/x"], GOLDEN[f"{case}/y"], loss=meta["loss"])
    np.testing.assert_allclose(comp_loss, GOLDEN[f"{case}/loss"], rtol=1e-12)
    for i, g in enumerate(model.gradients()):
        np.testing.assert_allclose(g, GOLDEN[f"{case}/grad{i}"], rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("loss,n_out", [("softmax_cross_entropy", 3), ("binary_cross_entropy", 1),
                                        ("binary_cross_entropy", 2), ("mse", 2), ("quadratic", 1)])
@pytest.mark.parametrize("act", ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"])
def test_gradcheck_every_activation_and_loss(act, loss, n_out):
    rng = np.random.default_rng(1)
    model = fn.Sequential([fn.Dense(3, 4, activation=act), fn.Dense(4, n_out)], dtype="float64", seed=2)
    X = rng.standard_normal((5, 3))
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, n_out, 5)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (5, n_out))
    else:
        y = rng.standard_normal((5, n_out))
    result = fn.gradcheck(model, X, y, loss=loss)
    assert result.ok, (result.max_abs_error, result.max_rel_error)
    assert result.n_checked == model.n_parameters


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "softmax", "identity"])
def test_gradcheck_standalone_activation_layers(name):
    rng = np.random.default_rng(3)
    model = fn.Sequential([fn.Dense(4, 5), fn.Activation(name, alpha=0.2), fn.Dense(5, 3)],
                          dtype="float64", seed=4)
    result = fn.gradcheck(model, rng.standard_normal((6, 4)), rng.integers(0, 3, 6),
                          loss="softmax_cross_entropy")
    assert result.ok, result.max_rel_error


def test_named_activation_layers_equal_fused_activation():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    fused = fn.Sequential([fn.Dense(3, 4, activation="tanh"), fn.Dense(4, 2)], dtype="float64")
    split = fn.Sequential([fn.Dense(3, 4), fn.Tanh(), fn.Dense(4, 2)], dtype="float64")
    for a, b in zip(fused.parameters(), split.parameters()):
        b[...] = a
    np.testing.assert_allclose(split.forward(X), fused.forward(X), rtol=1e-14)
    for cls, name in ((fn.ReLU, "relu"), (fn.Sigmoid, "sigmoid"), (fn.Softmax, "softmax"),
                      (fn.Identity, "identity")):
        assert cls().activation == name
    assert fn.LeakyReLU(0.3).alpha == 0.3


def test_numerical_gradient_lecture_intuition():
    """f(a) = 3a: nudging a = 2 by 0.001 moves f by 0.003, slope 3; same at a = 5."""
    for a0 in (2.0, 5.0):
        a = np.array([a0])
        slope = fn.numerical_gradient(lambda: 3 * a[0], a, eps=0.001)
        np.testing.assert_allclose(slope, [3.0], rtol=1e-9)
        assert a[0] == a0  # restored


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    rng = np.random.default_rng(5)
    model = fn.Sequential([fn.Dense(3, 2)], dtype="float64")
    layer = model.layers[0]
    orig = layer.backward

    def wrong(dy):
        out = orig(dy)
        layer.dW *= 1.01
        return out

    monkeypatch.setattr(layer, "backward", wrong)
    result = fn.gradcheck(model, rng.standard_normal((4, 3)), rng.integers(0, 2, 4),
                          loss="softmax_cross_entropy")
    assert not result.ok and result.max_rel_error > 5e-3


# ------------------------------------------------------------------ the API
def test_parameters_are_views_of_one_buffer_in_layer_order():
    model = fn.Sequential([fn.Dense(64, 32, activation="relu"), fn.Dense(32, 10)], seed=0)
    params = model.parameters()
    assert [p.shape for p in params] == [(32, 64), (32,), (10, 32), (10,)]
    assert [g.shape for g in model.gradients()] == [p.shape for p in params]
    assert all(p.dtype == np.float32 for p in params)
    flat = model.flat_parameters
    assert flat.size == model.n_parameters == 64 * 32 + 32 + 32 * 10 + 10
    offset = 0
    for p in params:
        assert np.shares_memory(p, flat) and p.flags.c_contiguous
        np.testing.assert_array_equal(flat[offset : offset + p.size], p.ravel())
        offset += p.size
    flat[0] = 123.0
    assert params[0][0, 0] == 123.0


@pytest.mark.parametrize("init,activation,expected_std", [
    ("he_normal", "relu", np.sqrt(2 / 400)),
    ("he_uniform", "relu", np.sqrt(2 / 400)),
    ("xavier_normal", "tanh", np.sqrt(2 / 600)),
    ("xavier_uniform", "tanh", np.sqrt(2 / 600)),
    ("glorot_uniform", "tanh", np.sqrt(2 / 600)),
    ("auto", "relu", np.sqrt(2 / 400)),
    ("auto", "sigmoid", np.sqrt(2 / 600)),
])
def test_initializations(init, activation, expected_std):
    model = fn.Sequential([fn.Dense(400, 200, activation=activation, init=init)], seed=0,
                          dtype="float64")
    W, b = model.parameters()
    np.testing.assert_allclose(W.std(), expected_std, rtol=0.02)
    assert abs(W.mean()) < 0.01 * expected_std * 10
    np.testing.assert_array_equal(b, 0)
    if "uniform" in init:
        assert np.abs(W).max() <= np.sqrt(3) * expected_std


def test_same_seed_same_weights_other_seed_other_weights():
    def make(seed):
        return fn.Sequential([fn.Dense(5, 4, activation="relu"), fn.Dense(4, 2)], seed=seed)

    np.testing.assert_array_equal(make(7).flat_parameters, make(7).flat_parameters)
    assert not np.array_equal(make(7).flat_parameters, make(8).flat_parameters)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_end_to_end(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 3))  # float64 input, converted once
    model = fn.Sequential([fn.Dense(3, 4, activation="sigmoid"), fn.Dense(4, 3)], dtype=dtype)
    model.loss_and_grad(X, rng.integers(0, 3, 10), loss="softmax_cross_entropy")
    assert model.forward(X).dtype == np.dtype(dtype)
    assert model.predict_proba(X).dtype == np.dtype(dtype)
    assert all(g.dtype == np.dtype(dtype) for g in model.gradients())
    for layer in model.layers:
        assert layer._a.dtype == np.dtype(dtype)


def test_three_backends_give_the_same_training():
    X, y = fn.datasets.load_digits()
    X, y = X[:60] / 16, y[:60]
    results = {}
    for backend in BACKENDS:
        model = fn.Sequential([fn.Dense(64, 8, activation="tanh"), fn.Dense(8, 10)], seed=3,
                              dtype="float64", backend=backend)
        h = model.fit(X, y, loss="softmax_cross_entropy",
                      optimizer=fn.optim.SGD(model.parameters(), lr=0.5, backend=backend),
                      epochs=2, batch_size=20)
        results[backend] = (model.flat_parameters.copy(), h.history["loss"])
    np.testing.assert_array_equal(results["jit"][1], results["jit"][1])
    for backend in ("loop", "vec"):
        np.testing.assert_allclose(results[backend][0], results["jit"][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(results[backend][1], results["jit"][1], rtol=1e-10)


def _digits_split(seed=0):
    X, y = fn.datasets.load_digits()
    X = X / 16.0
    order = np.random.default_rng(seed).permutation(len(X))
    return X[order[:1400]], y[order[:1400]], X[order[1400:]], y[order[1400:]]


def test_trains_on_digits_to_stated_accuracy_and_is_reproducible():
    Xtr, ytr, Xte, yte = _digits_split()

    def run():
        model = fn.Sequential([fn.Dense(64, 32, activation="relu"), fn.Dense(32, 10)], seed=0)
        history = model.fit(Xtr, ytr, loss="softmax_cross_entropy",
                            optimizer=fn.optim.SGD(model.parameters(), lr=0.1),
                            epochs=20, batch_size=32, validation_data=(Xte, yte))
        return model, history

    model, history = run()
    acc = model.evaluate(Xte, yte)["accuracy"]
    assert acc >= 0.95, acc
    assert history.history["val_accuracy"][-1] == acc
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.epoch) == 20
    np.testing.assert_array_equal(model.predict(Xte), np.argmax(model.forward(Xte), axis=1))
    proba = model.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    model2, _ = run()
    np.testing.assert_array_equal(model2.flat_parameters, model.flat_parameters)


@pytest.mark.parametrize("batch_size", [None, 1, 7])
def test_batch_stochastic_and_minibatch_gd_reduce_the_loss(batch_size):
    X, y = fn.datasets.load_breast_cancer()
    X = (X - X.mean(0)) / X.std(0)
    model = fn.Sequential([fn.Dense(30, 1)], seed=0, dtype="float64")  # logistic regression
    before = model.evaluate(X, y, loss="binary_cross_entropy")["loss"]
    epochs = 60 if batch_size is None else 3
    model.fit(X, y, optimizer=fn.optim.SGD(model.parameters(), lr=0.5 if batch_size is None else 0.05),
              epochs=epochs, batch_size=batch_size)
    after = model.evaluate(X, y)
    assert after["loss"] < 0.15 < before
    assert after["accuracy"] > 0.96
    assert model.predict(X).shape == (len(X),)
    assert set(np.unique(model.predict(X))) <= {0, 1}
    assert model.predict_proba(X).shape == (len(X),)


def test_full_batch_step_is_the_lectures_update():
    """One batch-GD epoch is exactly theta := theta - alpha dJ/dtheta on all samples."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((9, 3)), rng.integers(0, 2, 9)
    model = fn.Sequential([fn.Dense(3, 2, activation="tanh"), fn.Dense(2, 1)], dtype="float64")
    model.loss_and_grad(X, y, loss="binary_cross_entropy")
    expected = model.flat_parameters - 0.3 * model.flat_gradients
    model.fit(X, y, optimizer=fn.optim.SGD(model.parameters(), lr=0.3), epochs=1, batch_size=None)
    np.testing.assert_allclose(model.flat_parameters, expected, rtol=1e-14)


def test_regression_with_mse_and_validation_split():
    X, y = fn.datasets.load_diabetes()
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    model = fn.Sequential([fn.Dense(10, 16, activation="tanh"), fn.Dense(16, 1)], seed=1)
    h = model.fit(X, y, loss="mse", optimizer=fn.optim.SGD(model.parameters(), lr=0.05),
                  epochs=40, batch_size=16, validation_split=0.2)
    assert set(h.history) == {"loss", "val_loss"}
    assert h.history["loss"][-1] < 0.55 and h.history["val_loss"][-1] < 0.6
    assert model.predict(X).shape == (len(X),)
    with pytest.raises(ValueError, match="predict_proba is for classification"):
        model.predict_proba(X)


def test_lists_and_non_contiguous_arrays_are_accepted():
    rng = np.random.default_rng(0)
    big = rng.standard_normal((8, 6))
    X = big[:, ::2]  # non-contiguous view
    assert not X.flags.c_contiguous
    model = fn.Sequential([fn.Dense(3, 2)], dtype="float64")
    a = model.loss_and_grad(X, [0, 1, 0, 1, 1, 0, 0, 1], loss="softmax_cross_entropy")
    b = model.loss_and_grad(np.ascontiguousarray(X).tolist(), np.array([0, 1, 0, 1, 1, 0, 0, 1]))
    assert a == b
    np.testing.assert_array_equal(model.forward(X.tolist()), model.forward(np.ascontiguousarray(X)))


def test_one_hot_labels_equal_integer_labels():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 4, 6)
    model = fn.Sequential([fn.Dense(3, 4)], dtype="float64")
    a = model.loss_and_grad(X, y, loss="softmax_cross_entropy")
    ga = model.flat_gradients.copy()
    b = model.loss_and_grad(X, np.eye(4)[y])
    np.testing.assert_allclose(a, b, rtol=1e-14)
    np.testing.assert_allclose(model.flat_gradients, ga, rtol=1e-13)


# ---------------------------------------------------------------- bad input
def _model():
    return fn.Sequential([fn.Dense(3, 4, activation="relu"), fn.Dense(4, 2)])


@pytest.mark.parametrize("X,y,match", [
    (np.ones(3), [0], "expected 2-D"),
    (np.ones((2, 3, 1)), [0, 1], "expected 2-D"),
    (np.ones((4, 3)), [0, 1, 0], "4 samples but y has 3"),
    (np.ones((2, 5)), [0, 1], "5 features but the first layer expects 3"),
    (np.array([[1.0, np.nan, 0], [0, 0, 0]]), [0, 1], "NaN or inf"),
    (np.array([[1.0, np.inf, 0], [0, 0, 0]]), [0, 1], "NaN or inf"),
    (np.ones((2, 3)), [0.0, np.nan], "NaN or inf"),
    (np.ones((2, 3)), [0, 2], r"labels must lie in 0..1"),
    (np.ones((2, 3)), [-1, 0], r"labels must lie in 0..1"),
    (np.ones((2, 3)), [0.5, 1], "whole numbers"),
    (np.ones((0, 3)), [], "empty"),
    ([["a", "b", "c"]], [0], "expected numbers"),
])
def test_bad_input_is_a_clear_value_error(X, y, match):
    model = _model()
    before = model.flat_parameters.copy()
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, loss="softmax_cross_entropy", epochs=1)
    np.testing.assert_array_equal(model.flat_parameters, before)


def test_layer_sizes_that_do_not_chain():
    with pytest.raises(ValueError, match=r"layers\[1\]: Dense\(n_in=5.*expects 5 inputs but the layer before it gives 4"):
        fn.Sequential([fn.Dense(3, 4), fn.Dense(5, 2)])


@pytest.mark.parametrize("kwargs,match", [
    (dict(loss="hinge"), "loss='hinge'"),
    (dict(loss="softmax_cross_entropy", epochs=0), "epochs=0"),
    (dict(loss="softmax_cross_entropy", batch_size=0), "batch_size=0"),
    (dict(loss="softmax_cross_entropy", validation_split=1.5), "validation_split"),
    (dict(loss="softmax_cross_entropy", optimizer="nope"), "optimizer='nope'"),
    (dict(loss="binary_cross_entropy"), r"y has shape \(3,\) but the network has 2 output"),
])
def test_bad_fit_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model().fit(np.ones((3, 3)), [0, 1, 0], **kwargs)


def test_misuse_errors():
    with pytest.raises(ValueError, match="activation='swish'"):
        fn.Dense(2, 2, activation="swish")
    with pytest.raises(ValueError, match="n_out=0"):
        fn.Dense(2, 0)
    with pytest.raises(ValueError, match="init='bogus'"):
        fn.Dense(2, 2, init="bogus")
    with pytest.raises(ValueError, match="backend='cuda'"):
        fn.Sequential([fn.Dense(2, 2)], backend="cuda")
    with pytest.raises(ValueError, match="dtype='int32'"):
        fn.Sequential([fn.Dense(2, 2)], dtype="int32")
    with pytest.raises(ValueError, match="cannot be the first layer"):
        fn.Sequential([fn.ReLU(), fn.Dense(2, 2)])
    with pytest.raises(ValueError, match="already applies softmax"):
        fn.Sequential([fn.Dense(2, 3, activation="softmax")]).loss_and_grad(
            np.ones((1, 2)), [0], loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match="at least 2 outputs"):
        fn.Sequential([fn.Dense(2, 1)]).loss_and_grad(np.ones((1, 2)), [0], loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match="needs the loss"):
        fn.Sequential([fn.Dense(2, 2)]).predict(np.ones((1, 2)))
    other = fn.Sequential([fn.Dense(3, 4, activation="relu"), fn.Dense(4, 2)])
    with pytest.raises(ValueError, match="does not hold this model's parameters"):
        _model().fit(np.ones((3, 3)), [0, 1, 0], loss="softmax_cross_entropy",
                     optimizer=fn.optim.SGD(other.parameters(), lr=0.1))


def test_train_and_eval_modes():
    model = _model()
    assert model.training is False
    assert model.train() is model and model.training
    assert model.eval() is model and not model.training
    model.train()
    model.fit(np.ones((3, 3)), [0, 1, 0], loss="softmax_cross_entropy")
    assert model.training  # fit restores the mode it found


def test_pickled_model_keeps_one_flat_buffer_and_trains_the_same():
    import pickle

    X, y = fn.datasets.load_digits()
    X, y = X[:200] / 16, y[:200]
    model = fn.Sequential([fn.Dense(64, 16, activation="relu"), fn.Dense(16, 10)], seed=0)
    model.fit(X, y, loss="softmax_cross_entropy", optimizer=fn.optim.Adam(model.parameters()),
              epochs=1, batch_size=50)
    clone = pickle.loads(pickle.dumps(model))
    for p in clone.parameters():
        assert np.shares_memory(p, clone.flat_parameters)
    assert all(np.shares_memory(a, b) for a, b in zip(clone.optimizer.params, clone.parameters()))
    assert np.shares_memory(clone.layers[0].W, clone.flat_parameters)
    model.fit(X, y, epochs=2, batch_size=50)
    clone.fit(X, y, epochs=2, batch_size=50)
    np.testing.assert_array_equal(clone.flat_parameters, model.flat_parameters)


def test_flat_base_finds_the_buffer_and_is_not_fooled_by_lookalikes():
    from fastnn.params import ParamBuffer, flat_base

    buf = ParamBuffer([(2, 3), (3,), (4, 1)], np.float32)
    flat = flat_base(buf.params)
    assert flat is not None and flat.size == 13 and np.shares_memory(flat, buf.data)
    again = flat_base(buf.params)
    assert again.__array_interface__["data"] == flat.__array_interface__["data"]
    assert flat_base(buf.params[::-1]) is None            # out of order
    assert flat_base([buf.params[0], buf.params[2]]) is None  # a gap
    copies = [p.copy() for p in buf.params]
    assert flat_base(copies) is None                       # separate arrays
    assert flat_base([buf.params[0], np.zeros(3, np.float64)]) is None  # two dtypes
    assert flat_base([]) is None


def test_optimizer_follows_new_gradient_arrays_after_caching_the_old_ones():
    model = fn.Sequential([fn.Dense(3, 2)], dtype="float64")
    opt = fn.optim.SGD(model.parameters(), lr=1.0)
    before = model.flat_parameters.copy()
    opt.step(model.gradients())  # zero gradients: no change, and the flat view is cached
    np.testing.assert_array_equal(model.flat_parameters, before)
    other = fn.params.ParamBuffer([p.shape for p in model.parameters()], np.float64)
    other.grad[:] = 1.0
    opt.step(other.grads)  # other arrays of the same shapes: must be read, not the cache
    np.testing.assert_array_equal(model.flat_parameters, before - 1.0)


def test_a_rejected_fit_leaves_the_model_as_it_was():
    X, y = np.ones((4, 3)), [0, 1, 0, 1]
    model = _model()
    first = fn.optim.SGD(model.parameters(), lr=0.1)
    model.fit(X, y, loss="softmax_cross_entropy", optimizer=first)
    before = model.flat_parameters.copy()
    for bad in (dict(validation_split=2.0), dict(callbacks=["not a callback"]),
                dict(validation_data=(X,))):
        with pytest.raises(ValueError):
            model.fit(X, y, optimizer=fn.optim.Adam(model.parameters()), **bad)
        assert model.optimizer is first
        np.testing.assert_array_equal(model.flat_parameters, before)


def test_gradcheck_relative_error_ignores_entries_that_are_zero_both_ways():
    """The bias of a Dense before a BatchNorm has no effect on the loss: its analytic and
    numeric gradients are both ~0, and their ratio must not swamp the report."""
    rng = np.random.default_rng(0)
    model = fn.Sequential([fn.Dense(4, 8), fn.BatchNorm(8), fn.ReLU(), fn.Dense(8, 3)],
                          dtype="float64", seed=0)
    result = fn.gradcheck(model, rng.standard_normal((20, 4)), rng.integers(0, 3, 20),
                          loss="softmax_cross_entropy")
    assert result.ok
    assert result.max_rel_error < 1e-5
