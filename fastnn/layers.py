"""Layers: Dense and the activations as standalone layers.

A layer is built by :class:`fastnn.Sequential`, which calls, in order:

1. ``build(n_in, dtype, backend) -> n_out``: check the input width, pick kernels;
2. ``param_specs()``: the ``(name, shape, regularized)`` of each trainable array;
3. ``bind(params, grads)``: views into the model's flat buffers;
4. ``init_params(rng)``: fill the weights in place.

Then ``forward(x, training)`` returns the layer's output and ``backward(dy)`` its
input gradient (``None`` when ``need_input_grad`` is False, as for the first layer),
writing the parameter gradients into the bound views. Outputs live in per-layer
workspaces that are reused while the batch size stays the same: the training step
allocates nothing. An output is valid until the layer's next forward call.
"""

import numpy as np

from .kernels.activations import ACTIVATIONS, CODES, DERIVATIVES
from .kernels.dense import DENSE_BACKWARD, DENSE_FORWARD

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

    def extra_state(self):
        """Non-trainable arrays to save with the model (e.g. running statistics)."""
        return {}

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

    def forward(self, x, training):
        self._x = x
        a = self._ws.get("a", (x.shape[0], self.out_features), self.dtype)
        self._forward(x, self.W, self.b, self._act, self.alpha, a)
        self._a = a
        return a

    def backward(self, dy):
        x = self._x
        dz = self._ws.get("dz", dy.shape, self.dtype)
        if self.need_input_grad:
            dx = self._ws.get("dx", x.shape, self.dtype)
        else:
            dx = _EMPTY[self.dtype]
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
