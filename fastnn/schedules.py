"""Learning-rate schedules: callables ``step -> lr`` given as an optimizer's ``lr``.

The optimizer calls the schedule once per step with its ``step_count`` (0 for the
first step) and passes the value to the kernel as a scalar. A schedule is stateless:
its value is a function of the step alone, so saving the optimizer's ``step_count``
saves the schedule's position. Steps count batches, not epochs; to decay per epoch,
give ``decay_steps`` (or ``step_size``) in batches per epoch and ``staircase=True``.
Names and arguments follow Keras (``keras.optimizers.schedules``) and PyTorch
(``StepLR``). To reduce the learning rate when a validation metric stops improving,
use the callback :class:`fastnn.callbacks.ReduceLROnPlateau`.

============================  ===============================================
schedule                      lr at step t
============================  ===============================================
``Constant(lr)``              lr
``StepDecay``                 lr0 * gamma^floor(t / step_size)
``ExponentialDecay``          lr0 * rate^(t / decay_steps)
``InverseTimeDecay``          lr0 / (1 + rate * t / decay_steps), the lecture's
                              alpha0 / (1 + decay_rate * epoch_num)
``CosineDecay``               lr0 * ((1 - alpha) * (1 + cos(pi t / T)) / 2 + alpha),
                              then lr0 * alpha after T = decay_steps
============================  ===============================================

(``t / decay_steps`` is floored when ``staircase=True``.)
"""

import math

from .optim import _check_bool, _check_float


def _check_steps(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer (steps)")
    return value


class Schedule:
    """Base class: ``schedule(step) -> lr`` and ``get_config()`` (constructor arguments)."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None


class Constant(Schedule):
    """``lr`` at every step."""

    def __init__(self, lr):
        self.lr = _check_float("lr", lr)

    def __call__(self, step):
        return self.lr

    def get_config(self):
        return {"lr": self.lr}


class StepDecay(Schedule):
    """``lr0 * gamma ** (step // step_size)``: multiply by ``gamma`` every ``step_size``
    steps (PyTorch's ``StepLR``)."""

    def __init__(self, initial_learning_rate, step_size, gamma=0.1):
        self.initial_learning_rate = _check_float("initial_learning_rate",
                                                  initial_learning_rate)
        self.step_size = _check_steps("step_size", step_size)
        self.gamma = _check_float("gamma", gamma, 0.0, 1.0)

    def __call__(self, step):
        return self.initial_learning_rate * self.gamma ** (step // self.step_size)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "step_size": self.step_size, "gamma": self.gamma}


class _RateDecay(Schedule):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _check_float("initial_learning_rate",
                                                  initial_learning_rate)
        self.decay_steps = _check_steps("decay_steps", decay_steps)
        self.decay_rate = _check_float("decay_rate", decay_rate)
        self.staircase = _check_bool("staircase", staircase)

    def _progress(self, step):
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase}


class ExponentialDecay(_RateDecay):
    """``lr0 * decay_rate ** (step / decay_steps)`` (Keras's ``ExponentialDecay``)."""

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class InverseTimeDecay(_RateDecay):
    """``lr0 / (1 + decay_rate * step / decay_steps)``: the lecture's
    ``alpha = alpha0 / (1 + decay_rate * epoch_num)`` with ``decay_steps`` the batches
    per epoch and ``staircase=True`` (Keras's ``InverseTimeDecay``)."""

    def __call__(self, step):
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))


class CosineDecay(Schedule):
    """Half a cosine from ``lr0`` down to ``alpha * lr0`` over ``decay_steps`` steps, then
    constant (Keras's ``CosineDecay``; PyTorch's ``CosineAnnealingLR`` with
    ``eta_min = alpha * lr0`` over its first half-period)."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0):
        self.initial_learning_rate = _check_float("initial_learning_rate",
                                                  initial_learning_rate)
        self.decay_steps = _check_steps("decay_steps", decay_steps)
        self.alpha = _check_float("alpha", alpha, 0.0, 1.0)

    def __call__(self, step):
        t = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1 + math.cos(math.pi * t))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha}


#: name -> schedule class.
SCHEDULES = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "inverse_time": InverseTimeDecay,
    "cosine": CosineDecay,
}
