"""scikit-learn estimators over :class:`fastnn.Sequential`.

``from fastnn.sklearn import MLPClassifier, MLPRegressor``: this module is the only
one that imports scikit-learn (the optional extra ``fastnn[sklearn]``); ``import
fastnn`` works without it.

The estimators follow scikit-learn's conventions: the constructor only stores the
hyperparameters; ``fit`` validates them and the data, and sets the fitted attributes,
whose names end in ``_``; ``random_state`` seeds the weights, the shuffling and the
dropout masks. Hyperparameter names and defaults are those of scikit-learn's
``MLPClassifier``/``MLPRegressor`` where both have them, so that the estimators work
as drop-in replacements in ``Pipeline``, ``GridSearchCV`` and ``cross_val_score``;
fastnn adds ``dropout``, ``batch_norm``, every optimizer of ``fastnn.optim`` as a
``solver``, ``backend`` and ``dtype``.

Not supported: multilabel classification (a 2-D ``y`` of 0/1 indicators; use
``fastnn.Sequential`` with ``binary_cross_entropy`` directly), ``sample_weight``, and
scikit-learn's ``lbfgs`` solver and learning-rate schedules.
"""

import inspect
import numbers
import warnings

import numpy as np
try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError as exc:  # the estimators are an optional extra
    raise ImportError("fastnn.sklearn needs scikit-learn: pip install 'fastnn[sklearn]' "
                      "(or scikit-learn>=1.3)") from exc
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import callbacks as _callbacks
from . import layers as _layers
from .callbacks import Callback
from .layers import Activation, Dense
from .model import Sequential
from .model_selection import train_test_split
from .optim import OPTIMIZERS, get_optimizer

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names, and fastnn's own.
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid",
                "tanh": "tanh", "relu": "relu", "leaky_relu": "leaky_relu"}


class _Convergence(Callback):
    """scikit-learn's stopping rule, exactly: count the epochs whose training loss is
    not below the best so far minus ``tol`` (the best follows every decrease); stop
    when the count exceeds ``n_iter_no_change``."""

    def __init__(self, tol, n_iter_no_change):
        super().__init__()
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.best = np.inf
        self.count = 0

    def on_epoch_end(self, epoch, logs=None):
        loss = logs["loss"]
        self.count = self.count + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        if self.count > self.n_iter_no_change:
            self.model.stop_training = True


def _missing(option, piece):
    return NotImplementedError(
        f"{option} needs {piece}, which this version of fastnn does not have yet; "
        f"leave {option} at its default")


class _BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    _loss_name = None

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, l1=0.0, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 dropout=0.0, batch_norm=False, optimizer_kwargs=None, dtype=None,
                 backend="jit"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.l1 = l1
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.optimizer_kwargs = optimizer_kwargs
        self.dtype = dtype
        self.backend = backend

    # ------------------------------------------------------------ validation
    def _check_params(self):
        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name}={v!r}: expected a positive integer")

        def number(name, low, high=np.inf, low_open=False):
            v = getattr(self, name)
            ok = (not isinstance(v, bool) and isinstance(v, numbers.Real)
                  and (v > low if low_open else v >= low) and v < high)
            if not ok:
                raise ValueError(f"{name}={v!r}: expected a number in "
                                 f"{'(' if low_open else '['}{low}, {high})")

        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes={self.hidden_layer_sizes!r}: expected a "
                             "tuple of layer widths such as (100,)") from None
        if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1
               for s in sizes):
            raise ValueError(f"hidden_layer_sizes={self.hidden_layer_sizes!r}: expected "
                             "positive integers")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}: expected one of "
                             f"{sorted(_ACTIVATIONS)}")
        if not isinstance(self.solver, str) or self.solver.lower() not in OPTIMIZERS:
            raise ValueError(f"solver={self.solver!r}: expected one of {sorted(OPTIMIZERS)}"
                             " (fastnn.optim); scikit-learn's 'lbfgs' is not supported")
        number("alpha", 0.0)
        number("l1", 0.0)
        if self.batch_size != "auto":
            positive_int("batch_size")
        number("learning_rate_init", 0.0, low_open=True)
        positive_int("max_iter")
        number("tol", 0.0)
        number("validation_fraction", 0.0, 1.0, low_open=True)
        positive_int("n_iter_no_change")
        number("dropout", 0.0, 1.0)
        if self.optimizer_kwargs is not None and not isinstance(self.optimizer_kwargs, dict):
            raise ValueError(f"optimizer_kwargs={self.optimizer_kwargs!r}: expected a dict")
        # options whose fastnn piece may be missing: fail loudly, never ignore them
        fit_params = inspect.signature(Sequential.fit).parameters
        if self.alpha and "l2" not in fit_params:
            raise _missing("alpha (L2 regularization)", "Sequential.fit(l2=...)")
        if self.l1 and "l1" not in fit_params:
            raise _missing("l1", "Sequential.fit(l1=...)")
        if self.dropout and not hasattr(_layers, "Dropout"):
            raise _missing("dropout", "fastnn.Dropout")
        if self.batch_norm and not hasattr(_layers, "BatchNorm"):
            raise _missing("batch_norm", "fastnn.BatchNorm")
        if self.early_stopping and not hasattr(_callbacks, "EarlyStopping"):
            raise _missing("early_stopping", "fastnn.EarlyStopping")
        return sizes

    # --------------------------------------------------------------- model
    def _build(self, sizes, n_in, n_out, seed):
        act = _ACTIVATIONS[self.activation]
        layers = []
        width = n_in
        for h in sizes:
            if self.batch_norm:
                # normalize Z before the nonlinearity: Dense -> BatchNorm -> g
                layers += [Dense(width, h), _layers.BatchNorm(h), Activation(act)]
            else:
                layers.append(Dense(width, h, activation=act))
            if self.dropout:
                layers.append(_layers.Dropout(self.dropout))
            width = h
        layers.append(Dense(width, n_out))  # logits or values: the loss applies the link
        return Sequential(layers, seed=seed, dtype=self.dtype, backend=self.backend)

    def _make_optimizer(self, model):
        kwargs = dict(self.optimizer_kwargs or {})
        kwargs.setdefault("lr", self.learning_rate_init)
        return get_optimizer(self.solver, model.parameters(), backend=model.backend, **kwargs)

    # ------------------------------------------------------------- training
    def _validate(self, X, y, reset):
        return _validate_data(self, X, y, reset=reset, dtype=(np.float64, np.float32),
                              multi_output=self._multi_output, y_numeric=not self._is_clf)

    def _fit(self, X, y, incremental, classes=None):
        sizes = self._check_params()
        first = not (incremental and hasattr(self, "model_"))
        X, y = self._validate(X, y, reset=first)
        target, n_out = self._encode_targets(y, first, classes)
        n = X.shape[0]
        if first:
            self._seed = int(check_random_state(self.random_state).randint(2 ** 31 - 1))
            self.model_ = self._build(sizes, X.shape[1], n_out, self._seed)
            self._optimizer = self._make_optimizer(self.model_)
            self.loss_curve_ = []
            self.n_iter_ = 0
            self.t_ = 0
            self.best_loss_ = np.inf
        bs = min(200, n) if self.batch_size == "auto" else min(self.batch_size, n)
        fit_kwargs = {}
        if self.alpha:
            fit_kwargs["l2"] = self.alpha
        if self.l1:
            fit_kwargs["l1"] = self.l1
        callbacks = []
        stopper = None
        if not incremental:
            if self.early_stopping:
                n_val = int(np.ceil(self.validation_fraction * n))  # at least one, as sklearn
                if n_val >= n:
                    raise ValueError(f"validation_fraction={self.validation_fraction} of {n} "
                                     "samples leaves nothing to train on")
                X, Xv, target, yv = train_test_split(
                    X, target, test_size=n_val, stratify=self._is_clf, seed=self._seed)
                fit_kwargs["validation_data"] = (Xv, yv)
                # patience + 1: scikit-learn stops when the count *exceeds* n_iter_no_change
                stopper = _callbacks.EarlyStopping(
                    monitor="val_loss", min_delta=self.tol,
                    patience=self.n_iter_no_change + 1, restore_best_weights=True)
            else:
                stopper = _Convergence(self.tol, self.n_iter_no_change)
            callbacks.append(stopper)
        history = self.model_.fit(
            X, target, loss=self._loss_name, optimizer=self._optimizer,
            epochs=1 if incremental else self.max_iter, batch_size=bs, shuffle=self.shuffle,
            callbacks=callbacks, verbose=int(self.verbose), **fit_kwargs)
        losses = [float(v) for v in history.history.get("loss", [])]
        self.loss_curve_ = self.loss_curve_ + losses
        self.n_iter_ += len(losses)
        self.t_ += len(losses) * X.shape[0]
        self.best_loss_ = min([self.best_loss_] + losses)
        if "val_loss" in history.history:
            self.validation_loss_curve_ = [float(v) for v in history.history["val_loss"]]
        if stopper is not None and not self.model_.stop_training:
            warnings.warn(f"{type(self).__name__}: max_iter={self.max_iter} epochs reached "
                          "and the training loss has not converged yet", ConvergenceWarning)
        self.n_layers_ = len(sizes) + 2
        self.n_outputs_ = n_out
        self.out_activation_ = {"binary_cross_entropy": "logistic",
                                "softmax_cross_entropy": "softmax"}.get(self._loss_name,
                                                                        "identity")
        self._set_views()
        return self

    def fit(self, X, y):
        """Train from scratch for up to ``max_iter`` epochs.

        Stops earlier when the training loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, or, with ``early_stopping=True``, when the loss on
        a held-out ``validation_fraction`` has not (keeping the best weights).

        Returns
        -------
        self
        """
        for attr in ("model_", "_optimizer"):
            self.__dict__.pop(attr, None)
        return self._fit(X, y, incremental=False)

    def _output(self, X):
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.model_.forward(X)

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        # pickle would copy each parameter view on its own and lose the one flat buffer
        # the layers and the optimizer share; keep plain arrays and rebuild on load
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        opt = state.pop("_optimizer", None)
        if model is not None:
            state["_model_state"] = {
                "arch": (self._check_params(), model.n_features, model.n_outputs,
                         model.dtype.name, model.backend),
                "weights": model.get_weights(),
                # the shuffling and dropout streams, so that training resumes identically
                "step": getattr(model, "step", None),
                "shuffle_rng": getattr(model, "_shuffle_rng", None),
                "optimizer": opt.state_dict() if opt is not None else None,
            }
        return state

    def __setstate__(self, state):
        saved = state.pop("_model_state", None)
        self.__dict__.update(state)
        if saved is None:
            return
        sizes, n_in, n_out, dtype, backend = saved["arch"]
        params = (self.dtype, self.backend)
        self.dtype, self.backend = dtype, backend
        try:
            model = self._build(sizes, n_in, n_out, self._seed)
        finally:
            self.dtype, self.backend = params
        model.set_weights(saved["weights"])
        if saved["step"] is not None:
            model.step = saved["step"]
        if saved["shuffle_rng"] is not None:
            model._shuffle_rng = saved["shuffle_rng"]
        self.model_ = model
        self._optimizer = self._make_optimizer(model)
        if saved["optimizer"] is not None:
            self._optimizer.load_state_dict(saved["optimizer"])
        self._set_views()

    def _set_views(self):
        dense = [layer for layer in self.model_.layers if isinstance(layer, Dense)]
        # views (n_in, n_out), as scikit-learn lays them out; they follow further training
        self.coefs_ = [layer.W.T for layer in dense]
        self.intercepts_ = [layer.b for layer in dense]


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained by fastnn.

    Two classes: one output unit, ``binary_cross_entropy`` on its logit (the
    lecture's logistic unit). More: one logit per class, ``softmax_cross_entropy``.
    Labels may be any sortable values (integers, strings...); ``classes_`` maps them to
    output units.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Width of each hidden layer.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'leaky_relu'}, default 'relu'
        Of the hidden layers ('logistic' is the sigmoid).
    solver : str, default 'adam'
        Any optimizer of ``fastnn.optim.OPTIMIZERS`` ('sgd', 'momentum', 'rmsprop',
        'adam', 'adamw'...).
    alpha : float, default 1e-4
        L2 penalty on the weights, ``Sequential.fit(l2=alpha)``: ``alpha/(2m) sum W^2``
        per batch of m samples, as in scikit-learn.
    l1 : float, default 0
        L1 penalty on the weights, ``Sequential.fit(l1=l1)``.
    batch_size : int or 'auto', default 'auto'
        Mini-batch size; 'auto' is ``min(200, n_samples)``.
    learning_rate_init : float, default 1e-3
        The optimizer's ``lr``.
    max_iter : int, default 200
        Maximum number of epochs of ``fit``.
    shuffle : bool, default True
        Reshuffle the samples every epoch.
    random_state : int, RandomState or None
        Seeds the initialization, shuffling, dropout masks and the early-stopping split.
    tol : float, default 1e-4
        Minimum improvement of the loss that resets the ``n_iter_no_change`` count.
    verbose : bool or int, default False
        ``fit``'s progress bar (see ``Sequential.fit``).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified) and stop when
        its loss has not improved by ``tol`` for ``n_iter_no_change`` epochs, restoring
        the best weights (``fastnn.EarlyStopping``).
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    dropout : float, default 0
        Dropout rate after every hidden layer (``fastnn.Dropout``).
    batch_norm : bool, default False
        Batch normalization of every hidden layer before its activation
        (``fastnn.BatchNorm``).
    optimizer_kwargs : dict, optional
        Further optimizer arguments (``{'momentum': 0.9}``, ``{'betas': (0.9, 0.99)}``).
    dtype : {'float32', 'float64'} or None
        Of the network; None is fastnn's default (float32, ``FASTNN_DTYPE``).
    backend : {'jit', 'vec', 'loop'}, default 'jit'

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    model_ : fastnn.Sequential
        The trained network.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    best_loss_ : float
    validation_loss_curve_ : list of float
        Only with ``early_stopping``.
    n_iter_ : int
        Epochs run, over all ``fit``/``partial_fit`` calls since the last ``fit``.
    t_ : int
        Training samples seen.
    coefs_, intercepts_ : list of ndarray
        Weights ``(n_in, n_out)`` and biases of each layer: live views of ``model_``.
    out_activation_ : str
        'logistic' (two classes, one output) or 'softmax', applied by
        ``predict_proba``; the network itself outputs logits.
    n_features_in_, feature_names_in_, n_layers_, n_outputs_
    """

    _loss_name = None  # set per fit from the number of classes
    _is_clf = True
    _multi_output = False

    def _encode_targets(self, y, first, classes):
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes to train; "
                                 f"y has 1 class ({self.classes_[0]!r})")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels {unknown.tolist()} not in classes_ "
                             f"{self.classes_.tolist()}")
        idx = np.searchsorted(self.classes_, y)
        k = len(self.classes_)
        self._loss_name = "binary_cross_entropy" if k == 2 else "softmax_cross_entropy"
        return (idx.astype(np.float64) if k == 2 else idx.astype(np.int64)), (
            1 if k == 2 else k)

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer
        state (a fresh network on the first call).

        Parameters
        ----------
        classes : array-like, required on the first call
            All the labels that ``y`` will ever hold.
        """
        if not hasattr(self, "model_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit "
                                 "(all the labels y will ever hold)")
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as classes_ "
                             f"{self.classes_.tolist()} of the first call")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in the order of
        ``classes_``."""
        z = self._output(X).astype(np.float64)
        if z.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1.0 - p, p])
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample, as a label of ``classes_``."""
        z = self._output(X)
        idx = (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else np.argmax(z, axis=1)
        return self.classes_[idx]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor trained by fastnn: identity output,
    ``mse`` loss (scikit-learn's MLP halves the squared error; the minimizer is the
    same). ``y`` may have several columns (multi-output).

    Parameters and attributes are those of :class:`MLPClassifier`, without
    ``classes_``; ``predict`` returns float64 values of shape ``(n_samples,)`` or
    ``(n_samples, n_outputs)`` like ``y``.
    """

    _loss_name = "mse"
    _is_clf = False
    _multi_output = True

    def _encode_targets(self, y, first, classes):
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._y_2d = y.ndim == 2
        n_out = 1 if y.ndim == 1 else y.shape[1]
        if not first and n_out != self.n_outputs_:
            raise ValueError(f"y has {n_out} outputs but the network was trained with "
                             f"{self.n_outputs_}")
        return y, n_out

    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer
        state (a fresh network on the first call)."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        z = self._output(X).astype(np.float64)
        return z if self._y_2d else z[:, 0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _more_tags(self):  # the same for scikit-learn < 1.6
        return {"multioutput": True}
