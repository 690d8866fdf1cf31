"""Learning-rate schedules (values, the lecture's inverse-time decay, use by an
optimizer) and the ReduceLROnPlateau callback driven by fit's validation loss."""

import math

import numpy as np
import pytest

import fastnn as fn
from fastnn.schedules import (
    SCHEDULES,
    Constant,
    CosineDecay,
    ExponentialDecay,
    InverseTimeDecay,
    StepDecay,
)


def test_values():
    assert [Constant(0.1)(t) for t in (0, 5, 1000)] == [0.1, 0.1, 0.1]
    s = StepDecay(1.0, step_size=3, gamma=0.5)
    assert [s(t) for t in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    e = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert e(0) == 0.1 and e(10) == pytest.approx(0.05) and e(5) == pytest.approx(
        0.1 * 0.5 ** 0.5)
    e = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert e(9) == 0.1 and e(10) == pytest.approx(0.05)
    c = CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert c(0) == 1.0 and c(50) == pytest.approx(0.55) and c(100) == pytest.approx(0.1)
    assert c(1000) == pytest.approx(0.1)
    for t in (0, 17, 63, 100):  # PyTorch's CosineAnnealingLR closed form, eta_min = 0.1
        assert c(t) == pytest.approx(0.1 + (1.0 - 0.1) * (1 + math.cos(math.pi * t / 100)) / 2)


def test_lecture_inverse_time_decay():
    """alpha = alpha0 / (1 + decay_rate * epoch_num): alpha0 = 0.2, decay_rate = 1 gives
    0.1, 0.067, 0.05, 0.04 for epochs 1..4; per epoch of 10 batches with staircase."""
    s = InverseTimeDecay(0.2, decay_steps=10, decay_rate=1.0, staircase=True)
    assert [round(s(10 * epoch), 3) for epoch in range(1, 5)] == [0.1, 0.067, 0.05, 0.04]
    assert s(0) == s(9) == 0.2
    smooth = InverseTimeDecay(0.2, decay_steps=10, decay_rate=1.0)
    assert smooth(5) == pytest.approx(0.2 / 1.5)


@pytest.mark.parametrize("form", ["loop", "vec", "jit"])
def test_optimizer_resolves_the_schedule_once_per_step(form):
    calls = []

    def schedule(t):
        calls.append(t)
        return 0.1 * (t + 1)

    p = np.zeros(2)
    opt = fn.optim.SGD([p], lr=schedule, backend=form)
    for _ in range(3):
        opt.step([np.ones(2)])
    assert calls == [0, 1, 2]
    np.testing.assert_allclose(p, -(0.1 + 0.2 + 0.3), rtol=1e-15)
    # a skipped step does not advance the schedule
    with pytest.warns(RuntimeWarning):
        opt.step([np.array([np.nan, 0.0])])
    assert opt.current_lr() == pytest.approx(0.4)


def test_schedule_objects_with_adam_and_config():
    sched = StepDecay(0.01, step_size=2, gamma=0.1)
    p = np.ones(3)
    opt = fn.optim.Adam([p], lr=sched)
    assert opt.current_lr() == 0.01
    for _ in range(2):
        opt.step([np.ones(3)])
    assert opt.current_lr() == pytest.approx(0.001)
    assert opt.state_dict()["lr"] is None  # the position is the step count
    for name, cls in SCHEDULES.items():
        s = {"constant": Constant(0.1), "step": sched,
             "exponential": ExponentialDecay(0.1, 5, 0.5),
             "inverse_time": InverseTimeDecay(0.1, 5, 0.5),
             "cosine": CosineDecay(0.1, 5)}[name]
        assert isinstance(s, cls) and cls(**s.get_config()) == s
        assert repr(s).startswith(cls.__name__)


@pytest.mark.parametrize("make,match", [
    (lambda: StepDecay(0.1, step_size=0), "step_size"),
    (lambda: ExponentialDecay(-0.1, 10, 0.5), "initial_learning_rate"),
    (lambda: InverseTimeDecay(0.1, 10, -1.0), "decay_rate"),
    (lambda: CosineDecay(0.1, 10, alpha=2.0), "alpha"),
    (lambda: ExponentialDecay(0.1, 1.5, 0.5), "decay_steps"),
    (lambda: fn.ReduceLROnPlateau(factor=1.0), "factor"),
    (lambda: fn.ReduceLROnPlateau(patience=-1), "patience"),
    (lambda: fn.ReduceLROnPlateau(mode="up"), "mode"),
    (lambda: fn.ReduceLROnPlateau(min_lr=-1.0), "min_lr"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


class _Model:
    def __init__(self, opt):
        self.optimizer = opt


def test_reduce_lr_on_plateau_keras_semantics():
    opt = fn.optim.SGD([np.ones(1)], lr=1.0)
    cb = fn.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                              min_delta=0.01, min_lr=0.2)
    cb.set_model(_Model(opt))
    cb.on_train_begin({})
    lrs = []
    # improves, then plateaus (0.995 is not better than 1.0 by min_delta)
    for epoch, v in enumerate([1.0, 0.995, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.5]):
        cb.on_epoch_end(epoch, {"val_loss": v})
        lrs.append(opt.lr)
    # as Keras: wait 2 -> halve at epoch 2; the cooldown epoch (3) resets the wait but
    # counts once it is over, so the next halving is at epoch 4; then max(0.125, min_lr)
    # at epoch 6; at the floor nothing changes; the improvement at epoch 9 is the best
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]
    assert cb.reductions == [(2, 0.5), (4, 0.25), (6, 0.2)] and cb.best == 0.5


def test_reduce_lr_on_plateau_max_mode_and_missing_monitor():
    opt = fn.optim.Adam([np.ones(1)], lr=0.1)
    cb = fn.ReduceLROnPlateau(monitor="val_accuracy", patience=1, factor=0.1)
    assert cb.mode == "max"
    cb.set_model(_Model(opt))
    cb.on_train_begin({})
    cb.on_epoch_end(0, {"val_accuracy": 0.9})
    cb.on_epoch_end(1, {"val_accuracy": 0.95})
    assert opt.lr == 0.1
    cb.on_epoch_end(2, {"val_accuracy": 0.94})
    assert opt.lr == pytest.approx(0.01)
    with pytest.warns(UserWarning, match="val_accuracy"):
        cb.on_epoch_end(3, {"loss": 1.0})
    with pytest.raises(ValueError, match="schedule"):
        cb.set_model(_Model(fn.optim.Adam([np.ones(1)], lr=Constant(0.1))))
        cb.on_train_begin({})


def test_reduce_lr_on_plateau_in_fit_with_validation_loss():
    X, y = fn.datasets.load_digits()
    X = X / 16
    model = fn.Sequential([fn.Dense(64, 10)], seed=0)
    opt = fn.optim.SGD(model.parameters(), lr=0.5)
    # min_delta this large means "never improves" after the first epoch
    cb = fn.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=10.0)
    history = model.fit(X[:1500], y[:1500], loss="softmax_cross_entropy", optimizer=opt,
                        epochs=4, batch_size=100, validation_data=(X[1500:], y[1500:]),
                        callbacks=[cb])
    assert len(history["val_loss"]) == 4
    assert [e for e, _ in cb.reductions] == [1, 2, 3]
    assert opt.lr == pytest.approx(0.5 * 0.5 ** 3)
