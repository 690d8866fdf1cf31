"""Losses by name: target checking, the kernel call, and predictions from logits.

==========================  ==================================================================
name                        loss on the network's output Z (logits)
==========================  ==================================================================
softmax_cross_entropy       ``J = -1/m sum_i log softmax(Z_i)[y_i]``; integer labels ``(m,)``
                            or one-hot / probability rows ``(m, k)``. PyTorch's
                            ``CrossEntropyLoss``.
binary_cross_entropy        the lecture's logistic loss ``-y log a - (1-y) log(1-a)``,
                            ``a = sigmoid(z)``, averaged over all outputs; ``dZ = (A - Y)/m``.
                            PyTorch's ``BCEWithLogitsLoss``.
mse                         ``J = 1/(m k) sum (Z - Y)^2``, PyTorch's ``MSELoss``.
quadratic                   the lecture's quadratic cost ``C = 1/(2m) sum_x ||y(x) - a||^2``:
                            ``k/2`` times ``mse`` for ``k`` outputs (half of it for one).
==========================  ==================================================================
"""

import numpy as np

from .kernels.activations import sigmoid_forward_vec, softmax_forward_vec
from .kernels.losses import COUNT_KERNELS, LOSS_KERNELS


class Loss:
    """A named loss. ``prepare(y, n_outputs, dtype)`` validates targets once;
    ``__call__(z, target, grad, backend)`` returns the mean loss and fills ``grad``."""

    name = None
    is_classifier = False
    fused_activation = None  # an output activation the loss applies itself

    def prepare(self, y, n_outputs, dtype):
        raise NotImplementedError

    def __call__(self, z, target, grad, backend):
        raise NotImplementedError

    #: COUNT_KERNELS entry of the compiled epoch (regressions never call it)
    _count_kernel = "count_correct_binary"

    def epoch_kernels(self, target):
        """``(loss, count)``: the names of the loss kernel ``(z, target, grad) -> J``
        (``LOSS_KERNELS``) and the correct count ``(z, target) -> int``
        (``COUNT_KERNELS``) that ``fit``'s compiled epoch calls for ``target``, or None
        when it cannot take these targets."""
        if self.name not in LOSS_KERNELS:
            return None
        return self.name, self._count_kernel

    def predict(self, z):
        raise NotImplementedError

    def predict_proba(self, z):
        raise ValueError(f"predict_proba is for classification losses, not {self.name!r}")

    def correct(self, z, target, backend="vec"):
        """``(n_correct, n_scored)`` of the predictions in ``z``, or None for regression.
        The JIT form counts without allocating, for the training loop."""
        return None

    def accuracy(self, z, target, backend="vec"):
        """Fraction of correct predictions, or None for regression."""
        counts = self.correct(z, target, backend)
        return None if counts is None else counts[0] / counts[1]

    def __repr__(self):
        return f"{type(self).__name__}()"


def _check_finite(y):
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf; expected finite targets")


class SoftmaxCrossEntropy(Loss):
    name = "softmax_cross_entropy"
    is_classifier = True
    fused_activation = "softmax"

    def prepare(self, y, n_outputs, dtype):
        if n_outputs < 2:
            raise ValueError(
                "softmax_cross_entropy needs at least 2 outputs (one logit per class); the "
                f"network has {n_outputs}: use binary_cross_entropy for one output")
        y = np.asarray(y)
        if y.ndim == 1:
            if y.dtype.kind == "f":
                _check_finite(y)
                if not np.all(y == np.round(y)):
                    raise ValueError("softmax_cross_entropy: labels must be whole numbers "
                                     "0..k-1 (or one-hot rows of shape (m, k))")
            elif y.dtype.kind not in "iub":
                raise ValueError(f"softmax_cross_entropy: labels of dtype {y.dtype} are not "
                                 "class indices; expected integers 0..k-1")
            if y.size and (y.min() < 0 or y.max() >= n_outputs):
                raise ValueError(
                    f"softmax_cross_entropy: labels must lie in 0..{n_outputs - 1} for "
                    f"{n_outputs} outputs; got values from {y.min()} to {y.max()}")
            return np.ascontiguousarray(y, dtype=np.int64)
        if y.ndim == 2:
            if y.shape[1] != n_outputs:
                raise ValueError(f"softmax_cross_entropy: one-hot targets have {y.shape[1]} "
                                 f"columns but the network has {n_outputs} outputs")
            y = np.ascontiguousarray(y, dtype=dtype)
            _check_finite(y)
            if np.any(y < 0):
                raise ValueError("softmax_cross_entropy: target probabilities must be >= 0")
            return y
        raise ValueError(f"softmax_cross_entropy: y has shape {y.shape}; expected labels "
                         "(m,) or one-hot rows (m, k)")

    def __call__(self, z, target, grad, backend):
        if target.ndim == 1:
            return LOSS_KERNELS["softmax_cross_entropy"][backend](z, target, grad)
        return LOSS_KERNELS["softmax_cross_entropy_soft"][backend](z, target, grad)

    _count_kernel = "count_correct"

    def epoch_kernels(self, target):
        # probability rows are counted through np.argmax (see correct): not compiled
        return super().epoch_kernels(target) if target.ndim == 1 else None

    def predict(self, z):
        return np.argmax(z, axis=1)

    def predict_proba(self, z):
        out = np.empty_like(z)
        softmax_forward_vec(z, 0.0, out)
        return out

    def correct(self, z, target, backend="vec"):
        if target.ndim == 1:
            return COUNT_KERNELS["count_correct"][backend](z, target), z.shape[0]
        return COUNT_KERNELS["count_correct"]["vec"](z, np.argmax(target, axis=1)), z.shape[0]


def _as_columns(name, y, n_outputs, dtype):
    y = np.asarray(y)
    if y.dtype.kind not in "iufb":
        raise ValueError(f"{name}: y has dtype {y.dtype}; expected numbers")
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"{name}: y has shape {y.shape} but the network has {n_outputs} "
                         f"output(s); expected (m,) for one output or (m, {n_outputs})")
    y = np.ascontiguousarray(y, dtype=dtype)
    _check_finite(y)
    return y


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    is_classifier = True
    fused_activation = "sigmoid"

    def prepare(self, y, n_outputs, dtype):
        y = _as_columns(self.name, y, n_outputs, dtype)
        if np.any((y < 0) | (y > 1)):
            raise ValueError("binary_cross_entropy: targets must lie in [0, 1] (labels 0/1)")
        return y

    def __call__(self, z, target, grad, backend):
        return LOSS_KERNELS["binary_cross_entropy"][backend](z, target, grad)

    def predict(self, z):
        labels = (z > 0).astype(np.int64)
        return labels[:, 0] if z.shape[1] == 1 else labels

    def predict_proba(self, z):
        """P(y = 1) per output: shape (m,) for one output, (m, k) otherwise."""
        out = np.empty_like(z)
        sigmoid_forward_vec(z, 0.0, out)
        return out[:, 0] if z.shape[1] == 1 else out

    def correct(self, z, target, backend="vec"):
        return COUNT_KERNELS["count_correct_binary"][backend](z, target), z.size


class SquaredError(Loss):
    """``mse`` (mean over all elements) or the lecture's ``quadratic`` (half-sum over
    outputs, mean over samples)."""

    def __init__(self, name="mse"):
        self.name = name

    def prepare(self, y, n_outputs, dtype):
        return _as_columns(self.name, y, n_outputs, dtype)

    def __call__(self, z, target, grad, backend):
        return LOSS_KERNELS[self.name][backend](z, target, grad)

    def predict(self, z):
        return z[:, 0].copy() if z.shape[1] == 1 else z.copy()

    def __repr__(self):
        return f"SquaredError({self.name!r})"


LOSSES = {
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "mse": lambda: SquaredError("mse"),
    "quadratic": lambda: SquaredError("quadratic"),
}
_ALIASES = {"cross_entropy": "softmax_cross_entropy", "categorical_crossentropy":
            "softmax_cross_entropy", "bce": "binary_cross_entropy",
            "binary_crossentropy": "binary_cross_entropy", "logistic": "binary_cross_entropy"}


def get_loss(loss):
    """A :class:`Loss` from its name (or the instance itself)."""
    if isinstance(loss, Loss):
        return loss
    name = _ALIASES.get(loss, loss)
    if name not in LOSSES:
        raise ValueError(f"loss={loss!r}: expected one of {sorted(LOSSES)}")
    return LOSSES[name]()
