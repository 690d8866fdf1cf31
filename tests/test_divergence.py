"""A learning rate too high makes the loss or the gradient overflow: fit stops with a
message in the history and a warning, and the model keeps the weights (and running
statistics) of the last step whose loss was finite, bit for bit (when the float32
gradient overflows first, the optimizer skips the step and fit stops there)."""

import math
import warnings

import numpy as np
import pytest

import fastnn as fn


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 10, (40, 5))
    return X, X @ rng.normal(0, 1, 5) + rng.normal(0, 0.1, 40)


def _model(norm=False, dtype="float32"):
    layers = [fn.Dense(5, 8)]
    layers += [fn.BatchNorm(8)] if norm else []
    return fn.Sequential(layers + [fn.Dense(8, 1)], seed=2, dtype=dtype)


@pytest.mark.filterwarnings("ignore:.*skipped step:RuntimeWarning")  # the optimizer's own
@pytest.mark.parametrize("dtype, norm, what", [
    ("float32", False, "the gradient became inf or NaN"),  # float32 overflows first
    ("float64", False, "the loss became inf"),
    ("float32", True, "the loss became nan"),
    ("float64", True, "the loss became inf"),
])
def test_fit_stops_and_keeps_the_last_good_weights(dtype, norm, what):
    X, y = _data()
    model = _model(norm, dtype)
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = model.fit(X, y, loss="mse", epochs=500, batch_size=None,
                            optimizer=fn.optim.SGD(model.parameters(), lr=50.0))
    assert what in history.stopped_reason and "learning rate" in history.stopped_reason
    assert model.stop_training and len(history["loss"]) < 500
    assert all(math.isfinite(v) for v in history["loss"])  # only completed epochs
    for a in model.get_weights():
        assert np.all(np.isfinite(a))

    # the same steps by hand: the last weights whose loss was finite
    twin = _model(norm, dtype)
    opt = fn.optim.SGD(twin.parameters(), lr=50.0)
    good, good_step = twin.get_weights(), 0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(500):
            step = twin.step
            if not math.isfinite(twin.loss_and_grad(X, y, loss="mse")):
                break
            good, good_step = twin.get_weights(), step
            if opt.step(twin.gradients()) is False:  # a non-finite gradient: skipped
                break
    for comp, ref in zip(model.get_weights(), good):
        np.testing.assert_array_equal(comp, ref)
    assert model.step == good_step
    assert math.isfinite(model.evaluate(X, y)["loss"])


def test_no_message_when_training_converges():
    X, y = _data()
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(X / 10, y / 10, loss="mse", epochs=3,
                            optimizer=fn.optim.SGD(model.parameters(), lr=0.01))
    assert history.stopped_reason is None and len(history["loss"]) == 3
