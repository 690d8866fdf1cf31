"""Layers: Dense, the activations as standalone layers, Dropout, BatchNorm, LayerNorm.

A layer is built by :class:`fastnn.Sequential`, which calls, in order:

1. ``build(n_in, dtype, backend) -> n_out``: check the input width, pick kernels;
2. ``param_specs()``: the ``(name, shape, regularized)`` of each trainable array;
3. ``bind(params, grads)``: views into the model's flat buffers;
4. ``init_params(rng)``: fill the weights in place;
5. ``set_model(model, index)``: the model and the layer's position (random layers
   derive their masks from ``model.seed``, ``index`` and ``model.step``).

Then ``forward(x, training)`` returns the layer's output and ``backward(dy)`` its
input gradient (``None`` when ``need_input_grad`` is False, as for the first layer),
writing the parameter gradients into the bound views. Outputs live in per-layer
workspaces that are reused while the batch size stays the same: the training step
allocates nothing. An output is valid until the layer's next forward call.

Non-trainable state (batch norm's running statistics) is what ``extra_state()``
returns: a dict of the live arrays, which ``load_extra_state(values)`` fills in place.
"""

import numpy as np

from .kernels.activations import ACTIVATIONS, CODES, DERIVATIVES
from .kernels.dense import DENSE_BACKWARD, DENSE_FORWARD
from .kernels.dropout import DROPOUT_BACKWARD, DROPOUT_FORWARD
from .kernels.norm import (
    BATCHNORM_BACKWARD,
    BATCHNORM_FORWARD_EVAL,
    BATCHNORM_FORWARD_TRAIN,
    LAYERNORM_BACKWARD,
    LAYERNORM_FORWARD,
    coef_rows_backward,
    coef_rows_forward,
)
from .kernels.random import keep_threshold

_EMPTY = {np.dtype(np.float32): np.empty((0, 0), np.float32),
          np.dtype(np.float64): np.empty((0, 0), np.float64)}


class Workspace:
    """Arrays reused across calls: one per (name, shape), allocated on first use."""

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype):
        key = (name, shape)
        arr = self._arrays.get(key)
        if arr is None:
            arr = self._arrays[key] = np.empty(shape, dtype=dtype)
        return arr

    def clear(self):
        self._arrays.clear()

    def __getstate__(self):
        return {"_arrays": {}}  # scratch space: not worth pickling


class Layer:
    """Base class: a layer with no parameters that passes its input through."""

    need_input_grad = True

    def __init__(self):
        self.dtype = None
        self.backend = None
        self.n_in = None
        self.n_out = None
        self._ws = Workspace()

    def build(self, n_in, dtype, backend):
        self.n_in = self.n_out = n_in
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self._ws.clear()
        return self.n_out

    def param_specs(self):
        return []

    def bind(self, params, grads):
        pass

    def init_params(self, rng):
        pass

    def set_model(self, model, index):
        """Called by :class:`fastnn.Sequential` once the model is built, with the layer's
        position in it. Layers that draw random numbers (:class:`Dropout`) derive them
        from ``model.seed``, ``index`` and ``model.step`` here and at each forward."""

    def extra_state(self):
        """Non-trainable arrays to save with the model (e.g. running statistics).

        Returns the live arrays, by name: writing into them in place (``[...] =``)
        changes the layer, which is how :meth:`load_extra_state` restores them.
        """
        return {}

    def load_extra_state(self, values):
        """Copy ``values`` (name -> array, as :meth:`extra_state` returns) into the live
        arrays, in place; raises ``ValueError`` on a missing name or a wrong shape."""
        live = self.extra_state()
        if set(values) != set(live):
            raise ValueError(f"{self!r}: extra state {sorted(values)} given; expected "
                             f"{sorted(live)}")
        for name, arr in live.items():
            value = np.asarray(values[name])
            if value.shape != arr.shape:
                raise ValueError(f"{self!r}: extra state {name!r} has shape {value.shape}; "
                                 f"expected {arr.shape}")
            arr[...] = value

    def forward(self, x, training):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def config(self):
        """The constructor arguments, for ``repr`` and for saving."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


_INITS = ("he_normal", "he_uniform", "xavier_normal", "xavier_uniform")
_INIT_ALIASES = {"glorot_normal": "xavier_normal", "glorot_uniform": "xavier_uniform",
                 "he": "he_normal", "xavier": "xavier_normal", "glorot": "xavier_normal"}


def _check_activation(activation):
    name = "identity" if activation is None else activation
    if name not in CODES:
        raise ValueError(f"activation={activation!r}: expected None or one of {sorted(CODES)}")
    return name


def _check_alpha(alpha):
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r}: the leaky slope must be a finite number > 0")
    return float(alpha)


class Dense(Layer):
    """Fully connected layer: ``A = g(X W^T + b)``, the lecture's ``Z[l] = W[l] A[l-1] + b[l]``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths. ``W`` has shape ``(n_out, n_in)``, ``b`` ``(n_out,)``.
    activation : str or None
        ``None``/``'identity'`` (logits), ``'sigmoid'``, ``'tanh'``, ``'relu'``,
        ``'leaky_relu'`` or ``'softmax'``, fused into the layer's kernels.
    init : str
        ``'he_normal'`` (std sqrt(2/n_in)), ``'he_uniform'`` (limit sqrt(6/n_in)),
        ``'xavier_normal'`` (std sqrt(2/(n_in+n_out))), ``'xavier_uniform'`` (limit
        sqrt(6/(n_in+n_out))), or ``'auto'``: He for relu and leaky_relu, Xavier
        otherwise. ``glorot_*`` are accepted for ``xavier_*``. Biases start at zero.
    alpha : float
        Negative slope of ``'leaky_relu'``.
    """

    def __init__(self, n_in, n_out, activation=None, init="auto", alpha=0.01):
        super().__init__()
        for arg, value in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Dense {arg}={value!r}: expected a positive integer")
        self.in_features = int(n_in)
        self.out_features = int(n_out)
        self.activation = _check_activation(activation)
        init = _INIT_ALIASES.get(init, init)
        if init != "auto" and init not in _INITS:
            raise ValueError(f"init={init!r}: expected 'auto' or one of {_INITS}")
        self.init = init
        self.alpha = _check_alpha(alpha)
        self._act = CODES[self.activation]
        self.W = self.b = self.dW = self.db = None

    def config(self):
        return {"n_in": self.in_features, "n_out": self.out_features,
                "activation": self.activation, "init": self.init, "alpha": self.alpha}

    def build(self, n_in, dtype, backend):
        if n_in is not None and n_in != self.in_features:
            raise ValueError(
                f"{self!r} expects {self.in_features} inputs but the layer before it "
                f"gives {n_in}")
        super().build(self.in_features, dtype, backend)
        self.n_out = self.out_features
        self._forward = DENSE_FORWARD[backend]
        self._backward = DENSE_BACKWARD[backend]
        return self.n_out

    def param_specs(self):
        return [("W", (self.out_features, self.in_features), True),
                ("b", (self.out_features,), False)]

    def bind(self, params, grads):
        self.W, self.b = params
        self.dW, self.db = grads

    def init_params(self, rng):
        fan_in, fan_out = self.in_features, self.out_features
        init = self.init
        if init == "auto":
            init = "he_normal" if self.activation in ("relu", "leaky_relu") else "xavier_uniform"
        if init.startswith("he"):
            scale2 = 2.0 / fan_in
        else:
            scale2 = 2.0 / (fan_in + fan_out)
        if init.endswith("normal"):
            w = rng.standard_normal(self.W.shape) * np.sqrt(scale2)
        else:
            limit = np.sqrt(3.0 * scale2)
            w = rng.uniform(-limit, limit, self.W.shape)
        self.W[...] = w
        self.b[...] = 0

    def _output(self, m):
        return self._ws.get("a", (m, self.out_features), self.dtype)

    def _gradient_space(self, m):
        dz = self._ws.get("dz", (m, self.out_features), self.dtype)
        if self.need_input_grad:
            return dz, self._ws.get("dx", (m, self.in_features), self.dtype)
        return dz, _EMPTY[self.dtype]

    def workspace(self, m):
        """``(A, dZ, dX)`` for a batch of ``m``: reused while ``m`` stays the same (``dX``
        has no rows when the input gradient is not needed). A forward pass alone (predict)
        takes only ``A``."""
        return (self._output(m), *self._gradient_space(m))

    def forward(self, x, training):
        self._x = x
        a = self._output(x.shape[0])
        self._forward(x, self.W, self.b, self._act, self.alpha, a)
        self._a = a
        return a

    def backward(self, dy):
        x = self._x
        dz, dx = self._gradient_space(x.shape[0])
        self._backward(x, self.W, self._a, dy, self._act, self.alpha, dz, self.dW, self.db, dx)
        return dx if self.need_input_grad else None


class Activation(Layer):
    """A standalone activation ``A = g(Z)``, so that another layer (a normalization,
    say) can sit between a Dense and its nonlinearity.

    Parameters
    ----------
    activation : str
        ``'identity'``, ``'sigmoid'``, ``'tanh'``, ``'relu'``, ``'leaky_relu'`` or ``'softmax'``.
    alpha : float
        Negative slope of ``'leaky_relu'``.
    """

    def __init__(self, activation, alpha=0.01):
        super().__init__()
        self.activation = _check_activation(activation)
        self.alpha = _check_alpha(alpha)

    def config(self):
        return {"activation": self.activation, "alpha": self.alpha}

    def build(self, n_in, dtype, backend):
        if n_in is None:
            raise ValueError(f"{self!r} cannot be the first layer: its width is not known; "
                             "start with a Dense layer")
        n = super().build(n_in, dtype, backend)
        self._forward = ACTIVATIONS[self.activation][backend]
        self._backward = DERIVATIVES[self.activation][backend]
        return n

    def forward(self, x, training):
        a = self._ws.get("a", x.shape, self.dtype)
        self._forward(x, self.alpha, a)
        self._a = a
        return a

    def backward(self, dy):
        dx = self._ws.get("dx", dy.shape, self.dtype)
        self._backward(self._a, dy, self.alpha, dx)
        return dx


def _named_activation(name, doc):
    class _Named(Activation):
        __doc__ = doc

        def __init__(self):
            super().__init__(name)

        def config(self):
            return {}

    return _Named


Identity = _named_activation("identity", "``A = Z``.")
Sigmoid = _named_activation("sigmoid", "``A = 1 / (1 + exp(-Z))``.")
Tanh = _named_activation("tanh", "``A = tanh(Z)``.")
ReLU = _named_activation("relu", "``A = max(Z, 0)``.")
Softmax = _named_activation("softmax", "``A_ij = exp(Z_ij) / sum_k exp(Z_ik)``.")
for _cls, _name in ((Identity, "Identity"), (Sigmoid, "Sigmoid"), (Tanh, "Tanh"),
                    (ReLU, "ReLU"), (Softmax, "Softmax")):
    _cls.__name__ = _cls.__qualname__ = _name


class LeakyReLU(Activation):
    """``A = Z if Z > 0 else alpha Z``."""

    def __init__(self, alpha=0.01):
        super().__init__("leaky_relu", alpha)

    def config(self):
        return {"alpha": self.alpha}


def _check_width(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return int(value)


def _check_eps(eps):
    if not (isinstance(eps, (int, float, np.floating)) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps={eps!r}: expected a finite number > 0")
    return float(eps)


class Dropout(Layer):
    """Inverted dropout: in training ``A = D * Z / (1 - rate)``, identity in evaluation.

    Each unit of each sample is kept (``D = 1``) with probability ``1 - rate`` and
    dropped (``D = 0``) otherwise; the kept units are divided by ``1 - rate`` so that
    the expected activation is the same as in evaluation, where nothing is dropped
    or rescaled. The backward pass applies the same mask and scale.

    Naming: ``rate`` is the probability of *dropping* a unit, as in Keras and PyTorch
    (``nn.Dropout(p)``). The lecture's ``p`` is the probability of *keeping* one,
    ``p = 1 - rate``: its "p = 0.8 for visible units, 0.5 for hidden ones" is
    ``Dropout(0.2)`` and ``Dropout(0.5)``, and its "divide the activation by p" is the
    division by ``1 - rate`` here.

    The mask is a pure function of the model's seed, this layer's position, the
    training step ``model.step`` and the element's index (a counter-based generator,
    ``fastnn.kernels.random``): the same seed gives the same masks whatever the
    backend and the number of threads. It changes once per training step, not per
    forward call, so repeated forward passes within one step (finite differences) see
    the same mask.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of dropping each unit.
    n_in : int, optional
        The width, needed only when the dropout is the first layer (dropout on the
        inputs); otherwise it is taken from the layer before.
    """

    def __init__(self, rate, n_in=None):
        super().__init__()
        if (isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating))
                or not 0.0 <= rate < 1.0):
            raise ValueError(f"rate={rate!r}: expected the probability of dropping a unit, "
                             "a number in [0, 1) (the lecture's keep probability p is 1 - rate)")
        self.rate = float(rate)
        self.in_features = None if n_in is None else _check_width(n_in, "n_in")
        self._threshold = keep_threshold(self.rate)
        self._scale = 1.0 / (1.0 - self.rate)
        self._model = None
        self.key = np.uint64(0)
        self._active = False

    def config(self):
        cfg = {"rate": self.rate}
        if self.in_features is not None:
            cfg["n_in"] = self.in_features
        return cfg

    def build(self, n_in, dtype, backend):
        if n_in is None:
            if self.in_features is None:
                raise ValueError(f"{self!r} is the first layer: give its width, "
                                 "Dropout(rate, n_in=...)")
            n_in = self.in_features
        elif self.in_features is not None and n_in != self.in_features:
            raise ValueError(f"{self!r} expects {self.in_features} inputs but the layer "
                             f"before it gives {n_in}")
        n = super().build(n_in, dtype, backend)
        self._forward = DROPOUT_FORWARD[backend]
        self._backward = DROPOUT_BACKWARD[backend]
        return n

    def set_model(self, model, index):
        self._model = model
        # Hash the model's seed and the layer's position into the generator's key, so
        # two dropout layers of one model draw different masks.
        ss = np.random.SeedSequence(model.seed, spawn_key=(0xD50, index))
        self.key = ss.generate_state(1, np.uint64)[0]

    def forward(self, x, training):
        self._active = training and self.rate > 0.0
        if not self._active:
            return x
        step = 0 if self._model is None else self._model.step
        mask = self._ws.get("mask", x.shape, np.uint8)
        out = self._ws.get("a", x.shape, self.dtype)
        self._forward(x, self.key, step, self._threshold, self._scale, mask, out)
        self._mask = mask
        return out

    def backward(self, dy):
        if not self.need_input_grad:
            return None
        if not self._active:
            return dy
        dx = self._ws.get("dx", dy.shape, self.dtype)
        self._backward(dy, self._mask, self._scale, dx)
        return dx


class _Norm(Layer):
    """Shared parts of BatchNorm and LayerNorm: the width and the affine ``gamma, beta``."""

    def __init__(self, n_features, eps):
        super().__init__()
        self.n_features = _check_width(n_features, "n_features")
        self.eps = _check_eps(eps)
        self.gamma = self.beta = self.dgamma = self.dbeta = None

    def build(self, n_in, dtype, backend):
        if n_in is not None and n_in != self.n_features:
            raise ValueError(f"{self!r} normalizes {self.n_features} features but the layer "
                             f"before it gives {n_in}")
        return super().build(self.n_features, dtype, backend)

    def param_specs(self):
        return [("gamma", (self.n_features,), False), ("beta", (self.n_features,), False)]

    def bind(self, params, grads):
        self.gamma, self.beta = params
        self.dgamma, self.dbeta = grads

    def init_params(self, rng):
        self.gamma[...] = 1
        self.beta[...] = 0

    def _input_grad(self, shape):
        return self._ws.get("dx", shape, self.dtype) if self.need_input_grad else _EMPTY[self.dtype]


class BatchNorm(_Norm):
    """Batch normalization of each feature over the batch (PyTorch's ``BatchNorm1d``).

    Training: ``Z_norm = (Z - mu) / sqrt(sigma^2 + eps)`` with the batch's mean and
    biased variance per feature, then ``gamma * Z_norm + beta`` (``gamma``, ``beta``
    trainable, in the model's flat buffer, not regularized). The running estimates
    follow ``running = (1 - momentum) running + momentum batch``, with the unbiased
    variance ``m/(m-1) sigma^2`` in ``running_var``, as PyTorch does. Evaluation uses
    the running estimates (the lecture's population statistics ``mu_pop, sigma_pop``).
    A training batch of one sample normalizes to ``beta`` and leaves the running
    estimates unchanged (PyTorch refuses it; its variance is undefined).

    Parameters
    ----------
    n_features : int
    momentum : float in [0, 1]
        Weight of the new batch in the running estimates (PyTorch's convention; Keras's
        ``momentum`` is ``1 -`` this).
    eps : float
        Added to the variance under the square root.

    Attributes
    ----------
    running_mean, running_var : ndarray (n_features,)
        Non-trainable; :meth:`extra_state` returns these live arrays.
    """

    def __init__(self, n_features, momentum=0.1, eps=1e-5):
        super().__init__(n_features, eps)
        if (isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating))
                or not 0.0 <= momentum <= 1.0):
            raise ValueError(f"momentum={momentum!r}: expected a number in [0, 1]")
        self.momentum = float(momentum)
        self.running_mean = self.running_var = None
        self._batch_stats = False

    def config(self):
        return {"n_features": self.n_features, "momentum": self.momentum, "eps": self.eps}

    def build(self, n_in, dtype, backend):
        n = super().build(n_in, dtype, backend)
        self.running_mean = np.zeros(n, dtype=self.dtype)
        self.running_var = np.ones(n, dtype=self.dtype)
        self._forward_train = BATCHNORM_FORWARD_TRAIN[backend]
        self._forward_eval = BATCHNORM_FORWARD_EVAL[backend]
        self._backward = BATCHNORM_BACKWARD[backend]
        return n

    def extra_state(self):
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def forward(self, x, training):
        n = self.n_features
        mean = self._ws.get("mean", (n,), np.float64)
        invstd = self._ws.get("invstd", (n,), np.float64)
        out = self._ws.get("a", x.shape, self.dtype)
        if training:
            self._forward_train(x, self.gamma, self.beta, self.momentum, self.eps,
                                self.running_mean, self.running_var, mean, invstd, out,
                                self._ws.get("coef_forward", (coef_rows_forward(x.shape[0]), n),
                                             self.dtype))
        else:
            self._forward_eval(x, self.gamma, self.beta, self.eps, self.running_mean,
                               self.running_var, mean, invstd, out)
        self._x = x
        self._batch_stats = bool(training)
        return out

    def backward(self, dy):
        n = self.n_features
        dx = self._input_grad(dy.shape)
        self._backward(self._x, dy, self.gamma, self._ws.get("mean", (n,), np.float64),
                       self._ws.get("invstd", (n,), np.float64), self._batch_stats,
                       self._ws.get("acc_dy", (n,), np.float64),
                       self._ws.get("acc_dyx", (n,), np.float64), self.dgamma, self.dbeta, dx,
                       self._ws.get("coef_backward", (coef_rows_backward(dy.shape[0]), n),
                                    self.dtype))
        return dx if self.need_input_grad else None


class LayerNorm(_Norm):
    """Layer normalization: each sample normalized over its own features (PyTorch's
    ``LayerNorm(n_features)``), then ``gamma * Z_norm + beta``; the same in training and
    evaluation, so it needs no running statistics and works on a batch of one.

    Parameters
    ----------
    n_features : int
    eps : float
        Added to the variance under the square root.
    """

    def __init__(self, n_features, eps=1e-5):
        super().__init__(n_features, eps)

    def config(self):
        return {"n_features": self.n_features, "eps": self.eps}

    def build(self, n_in, dtype, backend):
        n = super().build(n_in, dtype, backend)
        self._forward = LAYERNORM_FORWARD[backend]
        self._backward = LAYERNORM_BACKWARD[backend]
        return n

    def forward(self, x, training):
        m = x.shape[0]
        mean = self._ws.get("mean", (m,), np.float64)
        invstd = self._ws.get("invstd", (m,), np.float64)
        out = self._ws.get("a", x.shape, self.dtype)
        self._forward(x, self.gamma, self.beta, self.eps, mean, invstd, out)
        self._x, self._mean, self._invstd = x, mean, invstd
        return out

    def backward(self, dy):
        n = self.n_features
        dx = self._input_grad(dy.shape)
        self._backward(self._x, dy, self.gamma, self._mean, self._invstd,
                       self._ws.get("acc_dy", (n,), np.float64),
                       self._ws.get("acc_dyx", (n,), np.float64), self.dgamma, self.dbeta, dx)
        return dx if self.need_input_grad else None
