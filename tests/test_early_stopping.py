"""EarlyStopping with Keras's semantics: patience, min_delta, modes, baseline,
start_from_epoch, best weights restored at the end of training; and on a run that
overfits, it stops and restores the best epoch's weights (and running statistics)."""

import warnings

import numpy as np
import pytest

import fastnn as fn


def _model():
    return fn.Sequential([fn.Dense(3, 4), fn.BatchNorm(4), fn.Dense(4, 2)], dtype="float64")


def _run(values, **kwargs):
    """Feed ``values`` as the monitored quantity, one per epoch, as fit would; before
    each epoch the weights are set to the epoch number. Returns the callback, the
    model and the number of epochs run."""
    model = _model()
    es = fn.EarlyStopping(**kwargs)
    es.set_model(model)
    es.on_train_begin({})
    model.stop_training = False
    epochs = 0
    for epoch, value in enumerate(values):
        model.flat_parameters[...] = epoch
        model.layers[1].running_mean[...] = epoch
        es.on_epoch_end(epoch, {"val_loss": value, "val_accuracy": -value})
        epochs += 1
        if model.stop_training:
            break
    es.on_train_end({})
    return es, model, epochs


@pytest.mark.parametrize("values, patience, stopped_epoch", [
    ([1.0, 0.9, 0.95, 0.8], 0, 2),       # the first epoch without improvement stops
    ([1.0, 0.9, 0.95, 0.96, 0.97], 2, 3),  # two epochs without improvement
    ([1.0, 0.9, 0.95, 0.8, 0.85, 0.7], 1, 2),
    ([1.0, 0.9, 0.8, 0.7], 0, 0),         # always improving: never stops
    ([1.0, 1.0, 0.5], 0, 1),              # equal is not better
    ([float("nan"), 1.0, 2.0, 0.5], 0, 2),  # NaN never improves; epoch 0 never stops
])
def test_patience(values, patience, stopped_epoch):
    es, _, epochs = _run(values, patience=patience)
    assert es.stopped_epoch == stopped_epoch
    assert epochs == (stopped_epoch + 1 if stopped_epoch else len(values))


def test_min_delta_needs_a_large_enough_decrease():
    es, _, epochs = _run([1.0, 0.97, 0.9], min_delta=0.05)
    assert epochs == 2 and es.best == 1.0
    es, _, epochs = _run([1.0, 0.94, 0.9], min_delta=-0.05)  # the sign is ignored
    assert epochs == 3 and es.best == 0.94


def test_max_mode_and_auto_mode_for_accuracy():
    es, _, epochs = _run([1.0, 0.9, 0.95], monitor="val_accuracy", patience=0)
    assert es.mode == "max" and epochs == 3 and es.best == -0.9 and es.best_epoch == 1
    es, _, _ = _run([1.0, 0.9], monitor="val_loss", mode="max")
    assert es.best == 1.0


def test_baseline_must_be_beaten_to_reset_the_wait():
    # improvements that do not beat the baseline do not reset wait: stop once a
    # non-improving epoch comes with wait >= patience
    es, _, epochs = _run([0.8, 0.7, 0.75, 0.6], baseline=0.5, patience=2)
    assert epochs == 3
    es, _, epochs = _run([0.8, 0.4, 0.45, 0.46], baseline=0.5, patience=2)
    assert epochs == 4 and es.stopped_epoch == 3


def test_start_from_epoch_skips_the_warm_up():
    es, _, epochs = _run([1.0, 2.0, 3.0, 2.5, 2.9], start_from_epoch=2)
    assert epochs == 5 and es.best == 2.5 and es.best_epoch == 3


def test_best_weights_restored_when_stopping_and_when_patience_never_ran_out():
    es, model, _ = _run([1.0, 0.5, 0.7, 0.8], patience=1, restore_best_weights=True)
    assert es.stopped_epoch == 2 and es.best_epoch == 1
    np.testing.assert_array_equal(model.flat_parameters, 1)
    np.testing.assert_array_equal(model.layers[1].running_mean, 1)
    es, model, _ = _run([1.0, 0.5, 0.7], patience=5, restore_best_weights=True)
    assert es.stopped_epoch == 0  # Keras 3: restores at the end of training regardless
    np.testing.assert_array_equal(model.flat_parameters, 1)
    es, model, _ = _run([1.0, 0.5, 0.7], patience=5)
    np.testing.assert_array_equal(model.flat_parameters, 2)  # last weights kept


def test_missing_monitor_warns_and_is_ignored():
    model = _model()
    es = fn.EarlyStopping(monitor="val_loss")
    es.set_model(model)
    es.on_train_begin({})
    with pytest.warns(UserWarning, match="val_loss"):
        es.on_epoch_end(0, {"loss": 1.0})
    assert es.wait == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "lowest"}, "mode"), ({"monitor": "val_f1"}, "mode='min'"),
    ({"patience": -1}, "patience"), ({"start_from_epoch": 1.5}, "start_from_epoch"),
    ({"min_delta": float("nan")}, "min_delta"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn.EarlyStopping(**kwargs)


# ------------------------------------------------------------------ with fit
def _overfit_setup():
    X, y = fn.datasets.load_digits()
    X = X / 16
    idx = np.random.default_rng(1).permutation(len(X))
    return X[idx[:60]], y[idx[:60]], X[idx[600:1000]], y[idx[600:1000]]


def _overfit_model():
    return fn.Sequential([fn.Dense(64, 128, activation="relu"), fn.BatchNorm(128),
                          fn.Dense(128, 10)], seed=3, dtype="float64")


@pytest.mark.parametrize("restore", [False, True])
def test_stops_a_run_that_overfits(restore):
    X, y, Xv, yv = _overfit_setup()
    model = _overfit_model()
    es = fn.EarlyStopping(patience=3, restore_best_weights=restore)
    history = model.fit(X, y, loss="softmax_cross_entropy", epochs=200, batch_size=20,
                        optimizer=fn.optim.SGD(model.parameters(), lr=0.2),
                        validation_data=(Xv, yv), callbacks=[es])
    val = history["val_loss"]
    n = len(val)
    assert n < 200  # stopped early ...
    assert history["loss"][-1] < history["loss"][es.best_epoch]  # ... while training improved
    assert es.best_epoch == int(np.argmin(val)) and es.stopped_epoch == es.best_epoch + 3
    assert min(val[es.best_epoch + 1:]) >= val[es.best_epoch]
    comp = model.evaluate(Xv, yv)["loss"]
    assert comp == pytest.approx(val[es.best_epoch] if restore else val[-1], rel=1e-12)
    if restore:
        assert comp < val[-1]


def test_monitor_loss_without_validation_data():
    X, y, _, _ = _overfit_setup()
    model = _overfit_model()
    es = fn.EarlyStopping(monitor="loss", min_delta=1e3)  # nothing improves by 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(X, y, loss="softmax_cross_entropy", epochs=10, callbacks=[es])
    assert len(history["loss"]) == 2 and es.stopped_epoch == 1
