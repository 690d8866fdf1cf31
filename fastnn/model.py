"""Sequential: a stack of layers over one flat parameter buffer; forward, backward, fit.

The lecture's training loop, one method each::

    loop over epochs and batches
        A, caches = forward_propagation(X)       -> Sequential.forward
        cost      = compute_cost(A, Y)           -> the loss kernel (fills dZ[L])
        grads     = backward_propagation(...)    -> Sequential.backward
        params    = update_parameters(...)       -> optimizer.step(model.gradients())

``batch_size=None`` is batch gradient descent, ``batch_size=1`` stochastic gradient
descent, anything between is mini-batch gradient descent.

For a stack of Dense layers on the JIT backend, ``fit`` runs an epoch's full batches
in one compiled call (``kernels/epoch.py``, through ``_epoch.py``) that makes the same
kernel calls as ``_train_step``, without Python between them; with threads given by
``fastnn.set_num_threads(n)`` it also splits each batch into ``n`` parts trained side
by side. Other models, and a last batch shorter than the others, take the Python loop.
"""

import math
import warnings

import numpy as np

from ._checks import check_positive_int, check_X, check_y_length
from ._config import resolve_backend, resolve_dtype
from ._progress import EpochProgress
from ._epoch import run_full_batches, threads_for_epoch
from .callbacks import Callback, History
from .layers import Layer, Workspace
from .losses import get_loss
from .optim import Optimizer, WeightPenalty, get_optimizer
from .params import ParamBuffer


class Sequential:
    """A feed-forward network.

    Parameters
    ----------
    layers : list of Layer
        Applied in order; each layer's input width must match the previous output.
    seed : int or None
        Seeds the weight initialization, the shuffling of ``fit`` and the dropout
        masks; the same seed gives the same weights, bit for bit.
    dtype : {'float32', 'float64'}
        Of parameters, activations and gradients, end to end. Default float32
        (``FASTNN_DTYPE`` overrides).
    backend : {'loop', 'vec', 'jit'}
        Which form of the kernels runs: Python loops (slow, for the lesson), NumPy,
        or numba (default).

    Attributes
    ----------
    layers : list of Layer
    training : bool
        Mode: dropout and batch statistics act only in training mode. ``fit`` and
        ``loss_and_grad`` train; ``predict``, ``predict_proba`` and ``evaluate`` do not.
    loss : Loss or None
        The loss last given to ``fit``, ``loss_and_grad`` or ``evaluate``, used by
        ``predict``.
    step : int
        Training steps taken (``fit`` batches and ``loss_and_grad`` calls). Dropout
        masks are drawn from ``(seed, step)``, so restoring ``step`` with the weights
        resumes training bit for bit.
    """

    def __init__(self, layers, seed=0, dtype=None, backend="jit"):
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"layers[{i}] is {type(layer).__name__}; expected a fastnn "
                                 "layer such as fastnn.Dense")
        self.layers = layers
        self.seed = seed
        self.dtype = resolve_dtype(dtype)
        self.backend = resolve_backend(backend)
        self.training = False
        self.stop_training = False
        self.loss = None
        #: The optimizer of the last ``fit``; ``fit`` reuses it when given none, so a
        #: model loaded with its optimizer state resumes where it stopped.
        self.optimizer = None
        self._ws = Workspace()
        self.step = 0
        self._last_good = None

        width = None
        specs = []
        for i, layer in enumerate(layers):
            try:
                width = layer.build(width, self.dtype, self.backend)
            except ValueError as exc:
                raise ValueError(f"layers[{i}]: {exc}") from None
            specs.append(layer.param_specs())
        self.n_features = layers[0].n_in
        self.n_outputs = width
        layers[0].need_input_grad = False

        self._buffer = ParamBuffer([shape for s in specs for _, shape, _ in s], self.dtype)
        #: True where a parameter is a weight (L1/L2 apply), False for biases and scales.
        self.regularized = [reg for s in specs for _, _, reg in s]
        self._bind_layers()
        seeds = np.random.SeedSequence(seed).spawn(2)
        init_rng = np.random.default_rng(seeds[0])
        self._shuffle_rng = np.random.default_rng(seeds[1])
        for layer in layers:
            layer.init_params(init_rng)
        for i, layer in enumerate(layers):
            layer.set_model(self, i)

    def _bind_layers(self):
        k = 0
        for layer in self.layers:
            n = len(layer.param_specs())
            layer.bind(self._buffer.params[k : k + n], self._buffer.grads[k : k + n])
            k += n

    def __setstate__(self, state):
        # pickle copies every view on its own (ParamBuffer re-tiles its views): bind the
        # layers and the optimizer to the one flat buffer again
        self.__dict__.update(state)
        self._bind_layers()
        if getattr(self, "optimizer", None) is not None:
            self.optimizer.params = self.parameters()
            self.optimizer._tile()

    # ------------------------------------------------------------ parameters
    def parameters(self):
        """``[W1, b1, W2, b2, ...]``: views into one flat contiguous buffer."""
        return list(self._buffer.params)

    def gradients(self):
        """The gradients of the last ``loss_and_grad``/training step, like ``parameters()``."""
        return list(self._buffer.grads)

    @property
    def flat_parameters(self):
        """All parameters as one 1-D array (a view: writing to it changes the model)."""
        return self._buffer.data

    @property
    def flat_gradients(self):
        """All gradients as one 1-D array (a view)."""
        return self._buffer.grad

    @property
    def n_parameters(self):
        return self._buffer.size

    def _state_arrays(self):
        """The live arrays of the model's state: the flat parameters, then each layer's
        ``extra_state()`` (running statistics), in layer order."""
        arrays = [self._buffer.data]
        for layer in self.layers:
            arrays.extend(layer.extra_state().values())
        return arrays

    def get_weights(self):
        """Copies of the parameters and the non-trainable state, as Keras's ``get_weights``:
        ``[flat_parameters, *running statistics]``; :meth:`set_weights` takes them back."""
        return [a.copy() for a in self._state_arrays()]

    def set_weights(self, weights):
        """Copy arrays from :meth:`get_weights` back into the model, in place."""
        live = self._state_arrays()
        if len(weights) != len(live) or any(np.shape(w) != a.shape
                                            for w, a in zip(weights, live)):
            raise ValueError("set_weights: expected the list get_weights returns, shapes "
                             f"{[a.shape for a in live]}")
        for a, w in zip(live, weights):
            a[...] = w

    # ----------------------------------------------------------------- modes
    def train(self):
        """Training mode (dropout on, batch statistics); returns self."""
        self.training = True
        return self

    def eval(self):
        """Evaluation mode (dropout off, running statistics); returns self."""
        self.training = False
        return self

    # ---------------------------------------------------------- the passes
    def _forward(self, x, training):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def _backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)

    def forward(self, X):
        """The network's output (logits for the classification losses) for ``X``,
        in the current mode. Returns a new array."""
        X = check_X(X, self.n_features, self.dtype)
        return self._forward(X, self.training).copy()

    __call__ = forward

    def backward(self, dout):
        """Backpropagate ``dout = dJ/dZ[L]`` through the last ``forward``; fills
        ``gradients()``."""
        dout = np.ascontiguousarray(dout, dtype=self.dtype)
        self._backward(dout)

    def _set_loss(self, loss):
        if loss is None:
            if self.loss is None:
                raise ValueError("no loss given: pass loss='softmax_cross_entropy', "
                                 "'binary_cross_entropy', 'mse' or 'quadratic'")
            return self.loss
        loss = get_loss(loss)
        last = self.layers[-1]
        act = getattr(last, "activation", None)
        if loss.fused_activation is not None and act == loss.fused_activation:
            raise ValueError(
                f"{loss.name} takes logits and applies {act} itself, but the last layer "
                f"({last!r}) already applies {act}: use activation=None on the output layer")
        self.loss = loss
        return loss

    def _prepare(self, X, y, loss):
        X = check_X(X, self.n_features, self.dtype)
        y = check_y_length(y, X.shape[0])
        return X, loss.prepare(y, self.n_outputs, self.dtype)

    def _loss_and_grad(self, X, target, loss, training=True, penalty=None):
        z = self._forward(X, training)
        grad = self._ws.get("dz", z.shape, self.dtype)
        value = loss(z, target, grad, self.backend)
        self._backward(grad)
        if penalty:
            value += penalty(self._buffer.data, self._buffer.grad, X.shape[0])
        return value, z

    def _penalty(self, l1, l2):
        """The L1/L2 term over the weights (``regularized``), or None when both are 0."""
        penalty = WeightPenalty(l1, l2, self._buffer.offsets, self.regularized, self.backend)
        return penalty if penalty else None

    def loss_and_grad(self, X, y, loss=None, l1=0.0, l2=0.0):
        """The mean loss J on ``(X, y)`` in training mode, plus the L1/L2 penalty on the
        weights when ``l1``/``l2`` are given (see ``fit``); fills ``gradients()``."""
        loss = self._set_loss(loss)
        X, target = self._prepare(X, y, loss)
        value, _ = self._loss_and_grad(X, target, loss, penalty=self._penalty(l1, l2))
        self.step += 1
        return float(value)

    # ------------------------------------------------------------- training
    def fit(self, X, y, loss=None, optimizer=None, epochs=1, batch_size=32,
            validation_data=None, validation_split=0.0, shuffle=True, callbacks=None,
            verbose=0, l1=0.0, l2=0.0):
        """Train by gradient descent.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : array-like
            Labels ``(n,)`` or targets ``(n, k)``, as the loss expects.
        loss : str or Loss
            ``'softmax_cross_entropy'``, ``'binary_cross_entropy'``, ``'mse'``,
            ``'quadratic'``; may be omitted after a previous call named it.
        optimizer : Optimizer or str
            An optimizer over ``self.parameters()``, or a name (``'sgd'``...) for one
            with its default hyperparameters. Default: ``SGD(lr=0.01)``.
        epochs : int
        batch_size : int or None
            None: batch GD (all samples per step); 1: SGD; else mini-batch GD. The
            last batch of an epoch holds the remainder.
        validation_data : (X_val, y_val), optional
        validation_split : float in [0, 1)
            Holds out the last fraction of the samples (before shuffling), as Keras does.
        shuffle : bool
            Reshuffle the samples every epoch (seeded by the model's seed).
        callbacks : list of Callback
        verbose : int
            0 silent; 1 a progress bar over the epochs with the latest loss and
            metrics (tqdm when installed, else a plain text bar); 2 one line per epoch.
        l1, l2 : float >= 0
            The lecture's regularization of the weights (not the biases), lambda1 and
            lambda2: ``J += lambda2/(2m) sum W^2 + lambda1/m sum |W|`` and
            ``dW += lambda2/m W + lambda1/m sign(W)``, m the batch size (scikit-learn's
            MLP convention). Included in the training ``loss``, not in ``val_loss``.
            For decoupled weight decay use ``optim.AdamW``.

        Returns
        -------
        History
            ``history.history['loss']`` etc., one value per epoch: the mean training
            loss over the epoch's batches (as the weights moved), the training
            accuracy for classifiers, and ``val_loss``/``val_accuracy`` at epoch end.
        """
        loss = self._set_loss(loss)
        X, target = self._prepare(X, y, loss)
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)
        optimizer = self._check_optimizer(optimizer)
        penalty = self._penalty(l1, l2)
        if not (0.0 <= validation_split < 1.0):
            raise ValueError(f"validation_split={validation_split!r}: expected a fraction "
                             "in [0, 1)")
        val = None
        if validation_data is not None:
            if validation_split:
                raise ValueError("give validation_data or validation_split, not both")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data: expected a pair (X_val, y_val)")
            Xv = check_X(validation_data[0], self.n_features, self.dtype, name="X_val")
            yv = check_y_length(validation_data[1], Xv.shape[0], "y_val", "X_val")
            val = (Xv, loss.prepare(yv, self.n_outputs, self.dtype))
        elif validation_split:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} of {X.shape[0]} "
                                 "samples leaves no validation or no training sample")
            val = (X[-n_val:], target[-n_val:])
            X, target = X[:-n_val], target[:-n_val]

        n = X.shape[0]
        bs = n if batch_size is None else min(batch_size, n)
        history = History()
        callbacks = [history] + list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise ValueError(f"callbacks: {cb!r} is not a fastnn Callback")
        self.optimizer = optimizer  # the arguments are all valid: now the model changes
        for cb in callbacks:
            cb.set_model(self)
        self.history = history
        self._last_good = _Snapshot(self._state_arrays(), self.step)
        was_training = self.training
        self.training = True
        self.stop_training = False
        progress = EpochProgress(epochs, verbose)
        try:
            for cb in callbacks:
                cb.on_train_begin({})
            for epoch in range(epochs):
                for cb in callbacks:
                    cb.on_epoch_begin(epoch, {})
                logs = self._fit_epoch(X, target, loss, optimizer, bs, shuffle, penalty)
                if logs is None:  # diverged: the weights are back at the last good step
                    self._stop_diverged(epoch, history)
                    break
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in
                                 self._evaluate(val[0], val[1], loss).items()})
                    self.training = True
                progress.update(epoch, logs)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            for cb in callbacks:
                cb.on_train_end({})
        finally:
            self.training = was_training
            progress.close()
        return history

    def _stop_diverged(self, epoch, history):
        what, batch = self._divergence, self._diverged_at
        self.step = self._last_good.restore()
        msg = (f"training diverged at epoch {epoch + 1}, batch {batch + 1}: {what}. The "
               "learning rate is probably too high (each update overshoots and the next "
               "gradient is larger). fit stopped; the model keeps the weights of the last "
               "step with a finite loss.")
        history.stopped_reason = msg
        self.stop_training = True
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def _check_optimizer(self, optimizer):
        if optimizer is None:
            optimizer = "sgd" if self.optimizer is None else self.optimizer
        if isinstance(optimizer, str):
            kwargs = {"lr": 0.01} if optimizer.lower() == "sgd" else {}
            return get_optimizer(optimizer, self.parameters(), backend=self.backend, **kwargs)
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer={optimizer!r}: expected a fastnn.optim optimizer "
                             "or a name such as 'sgd'")
        mine = self._buffer.params
        theirs = optimizer.params
        if len(theirs) != len(mine) or any(
                a.shape != b.shape or not np.shares_memory(a, b) for a, b in zip(mine, theirs)):
            raise ValueError("the optimizer does not hold this model's parameters: create it "
                             "with optimizer(model.parameters(), ...)")
        return optimizer

    def _train_step(self, xb, tb, loss, optimizer, penalty=None):
        """One step of gradient descent on a batch: forward, loss, backward, update.
        Returns ``(loss, n_correct, n_scored)``, or ``(None, 0, 0)`` with the reason in
        ``self._divergence`` (a sentence) when the loss or the gradient is not finite. Allocates
        nothing once the batch size has been seen (tests/test_allocations.py)."""
        value, z = self._loss_and_grad(xb, tb, loss, penalty=penalty)
        if not math.isfinite(value):
            self._divergence = f"the loss became {value}"
            return None, 0, 0
        # Keep the last state with a finite loss: a copy, 4% of a step of a
        # 670k-parameter model at batch 32, 2% for 10k parameters.
        self._last_good.save(self.step)
        if optimizer.step(self._buffer.grads) is False:
            # A float32 gradient can overflow while the float64 loss is still finite;
            # the optimizer, which checks every gradient anyway, skipped the step.
            self._divergence = "the gradient became inf or NaN"
            return None, 0, 0
        self.step += 1
        if loss.is_classifier:
            c, s = loss.correct(z, tb, self.backend)
            return value, c, s
        return value, 0, 0

    def _fit_epoch(self, X, target, loss, optimizer, bs, shuffle, penalty=None):
        with threads_for_epoch(self, loss, optimizer, target, bs, X.shape[0]):
            return self._fit_batches(X, target, loss, optimizer, bs, shuffle, penalty)

    def _fit_batches(self, X, target, loss, optimizer, bs, shuffle, penalty):
        n = X.shape[0]
        total = 0.0
        correct = scored = 0
        if bs == n:
            order = None  # batch GD: the order of samples does not change the gradient
        elif shuffle:
            order = self._shuffle_rng.permutation(n)
        else:
            order = np.arange(n)
        first = 0
        if order is not None:
            done = run_full_batches(self, X, target, loss, optimizer, bs, order, penalty)
            if done is not None:
                total, correct, steps, diverged = done
                if diverged:
                    self._diverged_at = steps
                    return None
                first = steps * bs
                if loss.is_classifier:  # loss.correct scores rows (labels) or outputs (0/1)
                    scored = first if target.ndim == 1 else first * target.shape[1]
        for start in range(first, n, bs):
            stop = min(start + bs, n)
            if order is None:
                xb, tb = X, target
            else:
                idx = order[start:stop]
                xb = self._ws.get("xb", (stop - start, X.shape[1]), self.dtype)
                tb = self._ws.get("tb", (stop - start,) + target.shape[1:], target.dtype)
                X.take(idx, axis=0, out=xb, mode="clip")
                target.take(idx, axis=0, out=tb, mode="clip")
            value, c, s = self._train_step(xb, tb, loss, optimizer, penalty)
            if value is None:
                self._diverged_at = start // bs
                return None
            total += value * (stop - start)
            correct += c
            scored += s
        if not np.isfinite(self._buffer.data).all():  # the last update overflowed
            self._divergence = "the weights became inf or NaN"
            self._diverged_at = (n - 1) // bs
            return None
        logs = {"loss": total / n}
        if loss.is_classifier:
            logs["accuracy"] = correct / scored
        return logs

    # ---------------------------------------------------------- inference
    def _evaluate(self, X, target, loss):
        z = self._forward(X, False)
        grad = self._ws.get("eval_dz", z.shape, self.dtype)
        out = {"loss": float(loss(z, target, grad, self.backend))}
        acc = loss.accuracy(z, target)
        if acc is not None:
            out["accuracy"] = acc
        return out

    def evaluate(self, X, y, loss=None):
        """``{'loss': J, 'accuracy': ...}`` on ``(X, y)`` in evaluation mode."""
        loss = self._set_loss(loss)
        X, target = self._prepare(X, y, loss)
        return self._evaluate(X, target, loss)

    def _output(self, X):
        X = check_X(X, self.n_features, self.dtype)
        return self._forward(X, False)

    def predict(self, X):
        """Class labels for the classification losses, values for regression."""
        if self.loss is None:
            raise ValueError("predict needs the loss to know the task: call fit or "
                             "loss_and_grad first (or use forward for raw outputs)")
        return self.loss.predict(self._output(X))

    def predict_proba(self, X):
        """Class probabilities: softmax rows, or P(y=1) for binary cross-entropy."""
        if self.loss is None:
            raise ValueError("predict_proba needs the loss: call fit or loss_and_grad first")
        return self.loss.predict_proba(self._output(X))

    # ---------------------------------------------------------- save / load
    def save(self, path, include_optimizer=False, optimizer=None, metadata=None):
        """Save to one ``.npz`` file, atomically; see :func:`fastnn.io.save`."""
        from . import io

        return io.save(self, path, include_optimizer=include_optimizer,
                       optimizer=optimizer, metadata=metadata)

    def load_weights(self, path):
        """Parameters and running statistics from a file saved by ``save``, into this
        model; see :func:`fastnn.io.load_weights`. Returns self."""
        from . import io

        return io.load_weights(self, path)

    # -------------------------------------------------------------- display
    def summary(self):
        """A table of layers, output widths and parameter counts."""
        lines = [f"Sequential(dtype={self.dtype.name}, backend={self.backend!r})"]
        for i, layer in enumerate(self.layers):
            n = sum(int(np.prod(shape)) for _, shape, _ in layer.param_specs())
            lines.append(f"  {i:>2}  {layer!r:<50} out={layer.n_out:<6} params={n}")
        lines.append(f"  total parameters: {self.n_parameters}")
        return "\n".join(lines)

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], dtype={self.dtype.name!r}, backend={self.backend!r})"


class _Snapshot:
    """Preallocated copies of some arrays and a step count: ``save(step)`` copies into
    them, ``restore()`` copies back and returns the step. No allocation after
    construction."""

    def __init__(self, arrays, step=0):
        self.live = arrays
        self.saved = [a.copy() for a in arrays]
        self.step = step

    def save(self, step):
        for dst, src in zip(self.saved, self.live):
            np.copyto(dst, src)
        self.step = step

    def restore(self):
        for dst, src in zip(self.live, self.saved):
            np.copyto(dst, src)
        return self.step
