"""Optimizers over lists of parameter arrays, PyTorch's names and defaults.

``opt = SGD(params, lr=0.1)`` keeps references to ``params`` (any list of float
arrays, such as ``model.parameters()``); ``opt.step(grads)`` updates them in place
from a matching list of gradients. When the arrays tile one contiguous buffer, as a
model's do, one kernel call updates them all.
"""

import numpy as np

from ._config import resolve_backend
from .kernels.optim import SGD_KERNELS
from .params import flat_base


def _check_params(params):
    params = list(params)
    if not params:
        raise ValueError("params is empty: expected a list of float arrays to optimize")
    dtype = None
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise ValueError(f"params[{i}] is {type(p).__name__}"
                             f"{'' if not isinstance(p, np.ndarray) else ' of dtype ' + str(p.dtype)}"
                             "; expected a float NumPy array updated in place")
        if not p.flags.writeable:
            raise ValueError(f"params[{i}] is read-only; expected a writeable array")
        if dtype is None:
            dtype = p.dtype
        elif p.dtype != dtype:
            raise ValueError(f"params[{i}] has dtype {p.dtype} but params[0] has {dtype}; "
                             "expected one dtype")
    return params


def _check_lr(lr):
    if callable(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise ValueError(f"lr={lr!r}: expected a float >= 0 or a schedule step -> float")
    if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"lr={lr!r}: expected a finite float >= 0")
    return float(lr)


class Optimizer:
    """Base class. Subclasses define ``_update(param, grad, state, lr)`` over 1-D arrays
    and ``_state_names``; the base class checks the gradients, resolves the learning
    rate (a float or a schedule ``step -> float``) and dispatches on the buffer layout.
    """

    _state_names = ()

    def __init__(self, params, lr, backend="jit"):
        self.params = _check_params(params)
        self.lr = _check_lr(lr)
        self.backend = resolve_backend(backend)
        self.step_count = 0
        self._flat = flat_base(self.params)
        self.state = {name: [np.zeros_like(p).reshape(-1) for p in self.params]
                      for name in self._state_names}

    def current_lr(self):
        """The learning rate of the next step."""
        return float(self.lr(self.step_count)) if callable(self.lr) else self.lr

    def _check_grads(self, grads):
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"step got {len(grads)} gradients for {len(self.params)} params; "
                             "expected one gradient per parameter, in the same order")
        for i, (g, p) in enumerate(zip(grads, self.params)):
            if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype != p.dtype:
                got = (f"{g.shape} {g.dtype}" if isinstance(g, np.ndarray)
                       else type(g).__name__)
                raise ValueError(f"grads[{i}] is {got}; expected shape {p.shape} and dtype "
                                 f"{p.dtype} like params[{i}]")
        return grads

    def step(self, grads):
        """Update the parameters in place from ``grads`` (one array per parameter)."""
        grads = self._check_grads(grads)
        lr = self.current_lr()
        gflat = flat_base(grads) if self._flat is not None else None
        if gflat is not None:
            self._update(self._flat, gflat, lr)
        else:
            for p, g in zip(self.params, grads):
                self._update(p.reshape(-1), np.ascontiguousarray(g).reshape(-1), lr)
        self.step_count += 1

    def _update(self, param, grad, lr):
        raise NotImplementedError


class SGD(Optimizer):
    """Plain gradient descent: ``theta := theta - lr * dtheta``.

    Parameters
    ----------
    params : list of ndarray
        Arrays updated in place.
    lr : float or callable
        Learning rate, or a schedule ``step -> lr``.
    """

    def __init__(self, params, lr=1e-3, backend="jit"):
        super().__init__(params, lr, backend)
        self._kernel = SGD_KERNELS[self.backend]

    def _update(self, param, grad, lr):
        self._kernel(param, grad, lr)


OPTIMIZERS = {"sgd": SGD}


def get_optimizer(name, params, **kwargs):
    """An optimizer from its name (``'sgd'``, ...) over ``params``."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}: expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](params, **kwargs)
