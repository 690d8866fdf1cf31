"""Model selection: splits, k-fold cross-validation, grid search, learning and
validation curves, and the lecture's bias-variance diagnosis.

The lecture's rule, made concrete: split the data into **train, CV (validation) and
test** partitions once; tune every hyperparameter by cross-validation on train + CV
only; touch the test partition once, at the end, to report the error of the chosen
model. Nothing here ever sees data it was not given, so passing only
``X_trainval, y_trainval`` to :func:`grid_search` is what keeps the test set unseen::

    X_tv, X_test, y_tv, y_test = fn.train_test_split(X, y, test_size=0.2, stratify=True)
    search = fn.grid_search(build, {"l2": [0, 1e-3, 1e-2]}, X_tv, y_tv, n_splits=5,
                            fit_kwargs=dict(loss="softmax_cross_entropy", epochs=20))
    search.best_model.evaluate(X_test, y_test)   # the one and only look at the test set

A *model* here is anything with ``fit(X, y, **kwargs)`` and ``predict(X)``: a
:class:`fastnn.Sequential`, a :class:`Standardized` wrapper around one, a
:class:`PolynomialRegression`, or a scikit-learn estimator. ``build_model`` is a
callable that returns a fresh, untrained model, so that no fold sees weights trained
on another fold.

Scores are *errors* by default, as in the lecture (train error 5 %, validation error
6 %): ``'error'`` (1 - accuracy) for classifiers and ``'mse'`` for regressors.
"""

import inspect
import itertools
import numbers
import warnings

import numpy as np

from .callbacks import Callback

__all__ = [
    "CurveResult",
    "CVResult",
    "Diagnosis",
    "GridSearchResult",
    "KFold",
    "PolynomialRegression",
    "Standardized",
    "StratifiedKFold",
    "cross_validate",
    "diagnose",
    "diagnose_model",
    "epoch_curve",
    "grid_search",
    "learning_curve",
    "make_polynomial_data",
    "polynomial_demo",
    "polynomial_features",
    "score",
    "train_test_split",
    "train_val_test_split",
    "validation_curve",
]


# ====================================================================== splits
def _n_samples(X, y):
    n = len(X)
    if y is not None and len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)}; expected one target per "
                         "sample")
    return n


def _as_count(size, n, name):
    """A partition size given as a fraction of ``n`` or as a count."""
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise ValueError(f"{name}={size!r}: expected a fraction in [0, 1) or a count")
    if isinstance(size, numbers.Integral):
        if not 0 <= size < n:
            raise ValueError(f"{name}={size}: expected a count in 0..{n - 1} for {n} samples")
        return int(size)
    if not 0.0 <= size < 1.0:
        raise ValueError(f"{name}={size!r}: expected a fraction in [0, 1)")
    return int(round(size * n))


def _labels(y):
    """Class indices 0..k-1 of ``y`` (rows of a 2-D ``y`` count as labels)."""
    y = np.asarray(y)
    _, labels = np.unique(y, return_inverse=True, axis=0 if y.ndim > 1 else None)
    return labels.reshape(-1)


def _stratified_order(y, rng):
    """A permutation of the samples that interleaves the classes evenly.

    Each sample gets the key ``(rank within its class + 0.5) / class count`` (ranks in a
    random order); sorting by the key spreads every class uniformly along the order,
    so any prefix holds each class in proportion, to within one sample.
    """
    labels = _labels(y)
    perm = rng.permutation(len(labels))
    counts = np.bincount(labels)
    key = np.empty(len(labels))
    seen = np.zeros_like(counts)
    for i in perm:
        c = labels[i]
        key[i] = (seen[c] + 0.5) / counts[c]
        seen[c] += 1
    # a stable sort of a random permutation breaks ties between classes at random
    return perm[np.argsort(key[perm], kind="stable")]


def _split_order(n, y, stratify, shuffle, seed):
    if stratify:
        if y is None:
            raise ValueError("stratify=True needs y (the class labels)")
        return _stratified_order(y, np.random.default_rng(seed))
    if shuffle:
        return np.random.default_rng(seed).permutation(n)
    return np.arange(n)


def _take(arrays, idx):
    return [None if a is None else np.asarray(a)[idx] for a in arrays]


def train_val_test_split(X, y=None, val_size=0.2, test_size=0.2, stratify=False,
                         shuffle=True, seed=0):
    """Split into the lecture's three partitions: train, CV (validation) and test.

    Parameters
    ----------
    X : array-like (n_samples, ...)
    y : array-like (n_samples, ...), optional
    val_size, test_size : float or int
        Fractions of all samples (``0.2``) or counts (``100``).
    stratify : bool
        Keep the class proportions of ``y`` in every partition (to within one sample
        per class).
    shuffle : bool
        Shuffle before splitting (ignored when stratifying, which always shuffles).
    seed : int or None

    Returns
    -------
    X_train, X_val, X_test, y_train, y_val, y_test
        ``y_*`` are omitted when ``y`` is None.
    """
    n = _n_samples(X, y)
    n_val = _as_count(val_size, n, "val_size")
    n_test = _as_count(test_size, n, "test_size")
    if n_val + n_test >= n:
        raise ValueError(f"val_size={val_size!r} and test_size={test_size!r} leave no "
                         f"training sample out of {n}")
    order = _split_order(n, y, stratify, shuffle, seed)
    # test first, then validation: both take evenly spread prefixes of the order
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    parts = [np.sort(train), np.sort(val), np.sort(test)]
    out = [a for idx in parts for a in _take([X], idx)]
    if y is not None:
        out += [a for idx in parts for a in _take([y], idx)]
    return tuple(out)


def train_test_split(X, y=None, test_size=0.2, stratify=False, shuffle=True, seed=0):
    """Two partitions: ``X_train, X_test, y_train, y_test`` (see :func:`train_val_test_split`)."""
    parts = train_val_test_split(X, y, val_size=0, test_size=test_size, stratify=stratify,
                                 shuffle=shuffle, seed=seed)
    if y is None:
        return parts[0], parts[2]
    return parts[0], parts[2], parts[3], parts[5]


class KFold:
    """K-fold cross-validation: every sample is in exactly one validation fold.

    Parameters
    ----------
    n_splits : int >= 2
    shuffle : bool
        Shuffle once before cutting the folds (default True: bundled datasets may be
        ordered).
    seed : int or None

    ``split(X, y)`` yields ``(train_idx, val_idx)`` pairs of sorted index arrays; fold
    sizes differ by at most one. Without shuffling the folds are contiguous blocks. The object also works as ``cv=`` of scikit-learn's
    model-selection functions.
    """

    _stratified = False

    def __init__(self, n_splits=5, shuffle=True, seed=0):
        if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral) \
                or n_splits < 2:
            raise ValueError(f"n_splits={n_splits!r}: expected an integer >= 2")
        self.n_splits = int(n_splits)
        self.shuffle = shuffle
        self.seed = seed

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n_splits

    def split(self, X, y=None, groups=None):
        n = _n_samples(X, y)
        if n < self.n_splits:
            raise ValueError(f"n_splits={self.n_splits} folds need at least {self.n_splits} "
                             f"samples; got {n}")
        if self._stratified:
            # classes in contiguous runs, shuffled within: dealing the order out to the
            # folds like cards (position p -> fold p mod k) gives every fold its share
            # of every class, and the fold sizes differ by at most one
            labels = _labels(y)
            perm = np.random.default_rng(self.seed).permutation(n)
            order = perm[np.argsort(labels[perm], kind="stable")]
            position_fold = np.arange(n) % self.n_splits
        else:
            # contiguous blocks of the (shuffled) order, the lecture's K-fold picture;
            # the first n mod k folds hold one sample more
            order = _split_order(n, y, False, self.shuffle, self.seed)
            sizes = np.full(self.n_splits, n // self.n_splits)
            sizes[:n % self.n_splits] += 1
            position_fold = np.repeat(np.arange(self.n_splits), sizes)
        fold_of = np.empty(n, dtype=np.int64)
        fold_of[order] = position_fold
        for k in range(self.n_splits):
            yield np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)

    def __repr__(self):
        return f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, " \
               f"seed={self.seed!r})"


class StratifiedKFold(KFold):
    """K-fold with the class proportions of ``y`` kept in every fold (to within one
    sample per class). Always shuffles (seeded)."""

    _stratified = True

    def split(self, X, y=None, groups=None):
        if y is None:
            raise ValueError("StratifiedKFold.split needs y (the class labels)")
        counts = np.bincount(_labels(y))
        if counts.min() < self.n_splits:
            warnings.warn(f"the smallest class has {counts.min()} samples, fewer than "
                          f"n_splits={self.n_splits}: some validation folds miss it",
                          stacklevel=2)
        return super().split(X, y, groups)


# ================================================================== scoring
_HIGHER_IS_BETTER = {"accuracy", "r2"}
_METRICS = ("error", "accuracy", "mse", "r2", "loss")


def _is_classifier(model):
    loss = getattr(model, "loss", None)
    if getattr(loss, "is_classifier", None) is not None and not isinstance(loss, str):
        return bool(loss.is_classifier)
    return hasattr(model, "classes_")


def score(model, X, y, metric=None):
    """One number: ``metric`` of a fitted ``model`` on ``(X, y)``.

    ``metric``: ``'error'`` (1 - accuracy, the default for classifiers), ``'accuracy'``,
    ``'mse'`` (the default for regressors), ``'r2'``, ``'loss'`` (the model's training
    loss, ``model.evaluate``), or a callable ``metric(model, X, y) -> float`` read as
    an error (lower is better).
    """
    if callable(metric):
        return float(metric(model, X, y))
    if metric is None:
        metric = "error" if _is_classifier(model) else "mse"
    if metric == "loss":
        return float(model.evaluate(X, y)["loss"])
    if metric not in _METRICS:
        raise ValueError(f"metric={metric!r}: expected a callable or one of {_METRICS}")
    pred = np.asarray(model.predict(X))
    y = np.asarray(y)
    if metric in ("error", "accuracy"):
        acc = float(np.mean(pred.reshape(y.shape) == y))
        return acc if metric == "accuracy" else 1.0 - acc
    resid = pred.reshape(y.shape).astype(np.float64) - y
    mse = float(np.mean(resid ** 2))
    if metric == "mse":
        return mse
    var = float(np.mean((y - y.mean(axis=0)) ** 2))
    return 1.0 - mse / var if var > 0 else 0.0


def _metric_name(model, metric):
    if callable(metric):
        return getattr(metric, "__name__", "custom")
    if metric is None:
        return "error" if _is_classifier(model) else "mse"
    return metric


def _greater_is_better(metric):
    return metric in _HIGHER_IS_BETTER


class Standardized:
    """A model whose inputs are standardized with the mean and standard deviation of
    the data it is fitted on: ``X' = (X - mean) / std``.

    Fitting the scaler inside ``fit`` means that in cross-validation it sees only the
    training folds, never the validation fold (no leakage). Other attributes (``loss``,
    ``history``, ``summary``...) are those of the wrapped model.

    Parameters
    ----------
    model : model
        Anything with ``fit`` and ``predict``; ``predict_proba`` and ``evaluate`` are
        forwarded when present.
    """

    def __init__(self, model):
        self.model = model
        self.mean = self.scale = None

    def _t(self, X):
        if self.mean is None:
            raise ValueError("Standardized model is not fitted: call fit first")
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale

    def fit(self, X, y, **kwargs):
        X = np.asarray(X, dtype=np.float64)
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale = np.where(std > 0, std, 1.0)  # a constant feature stays 0, not nan
        if "validation_data" in kwargs and kwargs["validation_data"] is not None:
            Xv, yv = kwargs["validation_data"]
            kwargs["validation_data"] = (self._t(Xv), yv)
        return self.model.fit(self._t(X), y, **kwargs)

    def predict(self, X):
        return self.model.predict(self._t(X))

    def predict_proba(self, X):
        return self.model.predict_proba(self._t(X))

    def evaluate(self, X, y, *args, **kwargs):
        return self.model.evaluate(self._t(X), y, *args, **kwargs)

    def __getattr__(self, name):
        if name == "model":  # not yet set (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self):
        return f"Standardized({self.model!r})"


# ========================================================= cross-validation
def _make_cv(cv, n_splits, y, stratify, seed):
    if cv is not None:
        return cv
    if stratify is None:
        # classification labels: integers, booleans or strings in one column
        y = np.asarray(y)
        stratify = y.ndim == 1 and y.dtype.kind in "iubUSO"
    return (StratifiedKFold if stratify else KFold)(n_splits, shuffle=True, seed=seed)


def _route(build_model, params):
    """Split grid parameters into those ``build_model`` accepts and those for ``fit``."""
    try:
        sig = inspect.signature(build_model)
    except (TypeError, ValueError):
        return dict(params), {}
    names = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in names.values()):
        return dict(params), {}
    build = {k: v for k, v in params.items() if k in names}
    fit = {k: v for k, v in params.items() if k not in names}
    return build, fit


def _fit_and_score(build_model, params, fit_kwargs, X, y, train, evals, metric):
    build_kw, fit_kw = _route(build_model, params)
    model = build_model(**build_kw)
    model.fit(X[train], y[train], **{**(fit_kwargs or {}), **fit_kw})
    return model, [score(model, X[idx], y[idx], metric) for idx in evals]


class CVResult:
    """Per-fold scores of :func:`cross_validate`.

    Attributes
    ----------
    metric : str
    train_scores, val_scores : ndarray (n_splits,)
        Scored on each fold's training part and on its held-out validation fold.
    train_mean, train_std, val_mean, val_std : float
        Mean and (population) standard deviation over the folds.
    models : list
        The fitted model of each fold.
    """

    def __init__(self, metric, train_scores, val_scores, models):
        self.metric = metric
        self.train_scores = np.asarray(train_scores, dtype=np.float64)
        self.val_scores = np.asarray(val_scores, dtype=np.float64)
        self.models = models

    train_mean = property(lambda self: float(self.train_scores.mean()))
    train_std = property(lambda self: float(self.train_scores.std()))
    val_mean = property(lambda self: float(self.val_scores.mean()))
    val_std = property(lambda self: float(self.val_scores.std()))

    def __repr__(self):
        return (f"CVResult({self.metric}: train {self.train_mean:.4f} +- {self.train_std:.4f}, "
                f"val {self.val_mean:.4f} +- {self.val_std:.4f}, {len(self.val_scores)} folds)")


def _arrays(X, y):
    X = np.asarray(X)
    y = np.asarray(y)
    _n_samples(X, y)
    return X, y


def cross_validate(build_model, X, y, n_splits=5, *, fit_kwargs=None, params=None,
                   metric=None, cv=None, stratify=None, seed=0):
    """K-fold cross-validation: train on k-1 folds, score on the held-out one, k times.

    Parameters
    ----------
    build_model : callable
        Returns a fresh untrained model (called once per fold, with ``params``).
    X, y : array-like
    n_splits : int
        k.
    fit_kwargs : dict, optional
        Passed to every ``model.fit`` (``loss``, ``optimizer``, ``epochs``...).
    params : dict, optional
        Hyperparameters: those ``build_model`` accepts go to it, the others to ``fit``.
    metric : str or callable, optional
        See :func:`score`; default ``'error'`` for classifiers, ``'mse'`` otherwise.
    cv : KFold-like, optional
        Anything with ``split(X, y)``; default :class:`StratifiedKFold` for class labels
        (1-D integers or strings) and :class:`KFold` otherwise (``stratify`` overrides).
    seed : int
        Of the fold assignment.

    Returns
    -------
    CVResult
    """
    X, y = _arrays(X, y)
    cv = _make_cv(cv, n_splits, y, stratify, seed)
    train_scores, val_scores, models = [], [], []
    for train, val in cv.split(X, y):
        model, (tr, va) = _fit_and_score(build_model, params or {}, fit_kwargs, X, y, train,
                                         (train, val), metric)
        train_scores.append(tr)
        val_scores.append(va)
        models.append(model)
    return CVResult(_metric_name(models[0], metric), train_scores, val_scores, models)


class GridSearchResult:
    """What :func:`grid_search` found.

    Attributes
    ----------
    metric : str
    results : list of dict
        One per grid point, in grid order: ``params``, ``train_mean``, ``train_std``,
        ``val_mean``, ``val_std``, ``train_scores``, ``val_scores``.
    best_index : int
    best_params : dict
    best_score : float
        Mean validation score of the best point.
    best_model : model or None
        Refitted on all the data given to the search (``refit=True``).
    """

    def __init__(self, metric, results, best_index, best_model):
        self.metric = metric
        self.results = results
        self.best_index = best_index
        self.best_params = results[best_index]["params"]
        self.best_score = results[best_index]["val_mean"]
        self.best_model = best_model

    def table(self):
        """The results as aligned text, one row per grid point."""
        rows = [f"{'params':<40} {'train ' + self.metric:>16} {'val ' + self.metric:>16}"]
        for i, r in enumerate(self.results):
            mark = " *" if i == self.best_index else ""
            rows.append(f"{str(r['params']):<40} {r['train_mean']:>9.4f} +-{r['train_std']:.3f}"
                        f" {r['val_mean']:>9.4f} +-{r['val_std']:.3f}{mark}")
        return "\n".join(rows)

    def __repr__(self):
        return (f"GridSearchResult(best_params={self.best_params}, "
                f"best {self.metric}={self.best_score:.4f}, {len(self.results)} points)")


def _grid(param_grid):
    if not isinstance(param_grid, dict) or not param_grid:
        raise ValueError("param_grid: expected a non-empty dict name -> list of values")
    names = list(param_grid)
    for name in names:
        values = param_grid[name]
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"param_grid[{name!r}] = {values!r}: expected a list of values")
        if len(list(values)) == 0:
            raise ValueError(f"param_grid[{name!r}] is empty")
    return [dict(zip(names, combo)) for combo in
            itertools.product(*(list(param_grid[n]) for n in names))]


def grid_search(build_model, param_grid, X, y, n_splits=5, *, fit_kwargs=None, metric=None,
                cv=None, stratify=None, seed=0, refit=True):
    """Exhaustive search over a grid of hyperparameters, each point scored by k-fold CV.

    Give it only the training + validation data: the test partition must stay unseen
    until the chosen model is final (the lecture's "97 % in experiments, 90 % in
    production" trap is tuning on the data you report on).

    Parameters
    ----------
    build_model : callable
        Returns a fresh model; receives the grid parameters it accepts by name.
    param_grid : dict
        ``name -> list of values``. Names ``build_model`` accepts go to it; the others
        go to ``model.fit`` (``l2``, ``epochs``, ``batch_size``, ``optimizer``...).
    X, y : array-like
        Train + validation data only.
    n_splits, fit_kwargs, metric, cv, stratify, seed
        As in :func:`cross_validate`; every point uses the same folds.
    refit : bool
        Refit the best point on all of ``X, y`` as ``best_model``.

    Returns
    -------
    GridSearchResult
        The best point has the lowest mean validation error (highest for
        ``'accuracy'``/``'r2'``); ties go to the earlier point.
    """
    X, y = _arrays(X, y)
    cv = _make_cv(cv, n_splits, y, stratify, seed)
    folds = list(cv.split(X, y))
    results = []
    name = None
    for params in _grid(param_grid):
        tr_scores, va_scores = [], []
        for train, val in folds:
            model, (tr, va) = _fit_and_score(build_model, params, fit_kwargs, X, y, train,
                                             (train, val), metric)
            tr_scores.append(tr)
            va_scores.append(va)
        name = name or _metric_name(model, metric)
        res = CVResult(name, tr_scores, va_scores, None)
        results.append({"params": params, "train_mean": res.train_mean,
                        "train_std": res.train_std, "val_mean": res.val_mean,
                        "val_std": res.val_std, "train_scores": res.train_scores,
                        "val_scores": res.val_scores})
    means = np.array([r["val_mean"] for r in results])
    best = int(np.argmax(means) if _greater_is_better(name) else np.argmin(means))
    best_model = None
    if refit:
        build_kw, fit_kw = _route(build_model, results[best]["params"])
        best_model = build_model(**build_kw)
        best_model.fit(X, y, **{**(fit_kwargs or {}), **fit_kw})
    return GridSearchResult(name, results, best, best_model)


# ===================================================================== curves
class CurveResult:
    """Train and validation scores against one knob.

    Attributes
    ----------
    param_name : str
        ``'train_size'``, ``'epoch'`` or the hyperparameter's name.
    values : ndarray
        The knob's values (training-set sizes, epoch numbers from 1, ...).
    train_scores, val_scores : ndarray (n_values, n_splits)
        One column per fold (one column for :func:`epoch_curve`).
    train_mean, val_mean, train_std, val_std : ndarray (n_values,)
    """

    def __init__(self, param_name, values, metric, train_scores, val_scores):
        self.param_name = param_name
        self.values = np.asarray(values)
        self.metric = metric
        self.train_scores = np.asarray(train_scores, dtype=np.float64).reshape(len(values), -1)
        self.val_scores = np.asarray(val_scores, dtype=np.float64).reshape(len(values), -1)

    train_mean = property(lambda self: self.train_scores.mean(axis=1))
    train_std = property(lambda self: self.train_scores.std(axis=1))
    val_mean = property(lambda self: self.val_scores.mean(axis=1))
    val_std = property(lambda self: self.val_scores.std(axis=1))

    def table(self):
        rows = [f"{self.param_name:>12} {'train ' + self.metric:>14} {'val ' + self.metric:>14}"]
        for v, tr, va in zip(self.values, self.train_mean, self.val_mean):
            rows.append(f"{str(v):>12} {tr:>14.4f} {va:>14.4f}")
        return "\n".join(rows)

    def __repr__(self):
        return f"CurveResult({self.param_name}, {len(self.values)} values, metric={self.metric})"


def learning_curve(build_model, X, y, train_sizes=(0.1, 0.325, 0.55, 0.775, 1.0), n_splits=5,
                   *, fit_kwargs=None, params=None, metric=None, cv=None, stratify=None,
                   seed=0):
    """Train and validation error against the number of training samples.

    For each fold, the model is trained on the first ``size`` samples of a (seeded)
    shuffle of the fold's training part and scored on them and on the whole validation
    fold. High bias: both curves plateau high and close together (more data will not
    help). High variance: a wide gap that narrows as data grows (more data helps).

    Parameters
    ----------
    train_sizes : sequence of float or int
        Fractions (in (0, 1]) of the training part, or sample counts.

    Returns
    -------
    CurveResult
        ``values`` holds the sizes as sample counts.
    """
    X, y = _arrays(X, y)
    cv = _make_cv(cv, n_splits, y, stratify, seed)
    folds = list(cv.split(X, y))
    n_train = min(len(tr) for tr, _ in folds)
    sizes = []
    for s in train_sizes:
        if isinstance(s, numbers.Integral) and not isinstance(s, bool):
            count = int(s)
        elif isinstance(s, numbers.Real) and 0 < s <= 1:
            count = max(1, int(round(s * n_train)))
        else:
            raise ValueError(f"train_sizes: {s!r} is neither a fraction in (0, 1] nor a count")
        if not 1 <= count <= n_train:
            raise ValueError(f"train_sizes: {s!r} is {count} samples; a training fold has "
                             f"{n_train}")
        sizes.append(count)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(train) for train, _ in folds]
    tr_scores = np.empty((len(sizes), len(folds)))
    va_scores = np.empty_like(tr_scores)
    model = None
    for i, size in enumerate(sizes):
        for j, (order, (_, val)) in enumerate(zip(orders, folds)):
            sub = np.sort(order[:size])
            model, (tr_scores[i, j], va_scores[i, j]) = _fit_and_score(
                build_model, params or {}, fit_kwargs, X, y, sub, (sub, val), metric)
    return CurveResult("train_size", sizes, _metric_name(model, metric), tr_scores, va_scores)


def validation_curve(build_model, X, y, param_name, param_range, n_splits=5, *,
                     fit_kwargs=None, params=None, metric=None, cv=None, stratify=None,
                     seed=0):
    """Train and validation error against one complexity knob (the lecture's
    bias-variance trade-off plot): high bias on the left, where both errors are high;
    high variance on the right, where the training error keeps falling and the
    validation error rises.

    ``param_name`` goes to ``build_model`` if it accepts it, else to ``fit``.

    Returns
    -------
    CurveResult
    """
    X, y = _arrays(X, y)
    cv = _make_cv(cv, n_splits, y, stratify, seed)
    folds = list(cv.split(X, y))
    values = list(param_range)
    tr_scores = np.empty((len(values), len(folds)))
    va_scores = np.empty_like(tr_scores)
    model = None
    for i, value in enumerate(values):
        for j, (train, val) in enumerate(folds):
            model, (tr_scores[i, j], va_scores[i, j]) = _fit_and_score(
                build_model, {**(params or {}), param_name: value}, fit_kwargs, X, y, train,
                (train, val), metric)
    return CurveResult(param_name, values, _metric_name(model, metric), tr_scores, va_scores)


class _EpochScores(Callback):
    def __init__(self, scored, X_train, y_train, X_val, y_val, metric):
        super().__init__()
        self.scored = scored
        self.data = (X_train, y_train, X_val, y_val)
        self.metric = metric
        self.train, self.val = [], []

    def on_epoch_end(self, epoch, logs=None):
        Xt, yt, Xv, yv = self.data
        self.train.append(score(self.scored, Xt, yt, self.metric))
        self.val.append(score(self.scored, Xv, yv, self.metric))


def epoch_curve(build_model, X_train, y_train, X_val, y_val, epochs, *, fit_kwargs=None,
                params=None, metric=None):
    """Train and validation error after every epoch of one training run.

    The validation error falling and then rising while the training error keeps
    falling is overfitting setting in: the epoch of the minimum is where early
    stopping would stop. The model's ``fit`` must take ``epochs`` and ``callbacks``
    (:class:`fastnn.Sequential` or :class:`Standardized` around one).

    Returns
    -------
    CurveResult
        ``values`` are the epoch numbers from 1; one column of scores.
    """
    build_kw, fit_kw = _route(build_model, params or {})
    model = build_model(**build_kw)
    kwargs = {**(fit_kwargs or {}), **fit_kw}
    cb = _EpochScores(model, X_train, y_train, X_val, y_val, metric)
    kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [cb]
    model.fit(X_train, y_train, epochs=epochs, **kwargs)
    n = len(cb.train)
    return CurveResult("epoch", np.arange(1, n + 1), _metric_name(model, metric),
                       cb.train, cb.val)


# ============================================================ bias-variance
#: The lecture's table "The Approach (Bigger Network with more data)".
REMEDIES = {
    "high bias": ["increase model complexity (a bigger network: more units or layers)",
                  "train longer (more epochs)"],
    "high variance": ["add more training data (e.g. dataset augmentation)",
                      "use regularization (L2/L1, dropout)",
                      "use early stopping (train less)"],
    "good fit": ["you are done!"],
}


class Diagnosis:
    """The lecture's error analysis of one model.

    Attributes
    ----------
    human_error, train_error, val_error : float
    avoidable_bias : float
        ``train_error - human_error``: the gap to human level (a proxy for Bayes error).
    variance : float
        ``val_error - train_error``: the gap between seen and unseen data.
    high_bias, high_variance : bool
        The gap exceeds ``tol``.
    dominant : {'bias', 'variance', 'none'}
        The larger gap when at least one is high, else ``'none'``.
    verdict : str
        ``'high bias'``, ``'high variance'``, ``'high bias and high variance'`` or
        ``'good fit'``.
    remedies : list of str
        From the lecture's table, for the dominant problem first.
    """

    def __init__(self, train_error, val_error, human_error, tol):
        self.human_error = human_error
        self.train_error = train_error
        self.val_error = val_error
        self.tol = tol
        self.avoidable_bias = train_error - human_error
        self.variance = val_error - train_error
        self.high_bias = self.avoidable_bias > tol
        self.high_variance = self.variance > tol
        if self.high_bias or self.high_variance:
            self.dominant = "bias" if self.avoidable_bias >= self.variance else "variance"
        else:
            self.dominant = "none"
        if self.high_bias and self.high_variance:
            self.verdict = "high bias and high variance"
        elif self.high_bias:
            self.verdict = "high bias"
        elif self.high_variance:
            self.verdict = "high variance"
        else:
            self.verdict = "good fit"
        order = {"bias": ["high bias", "high variance"],
                 "variance": ["high variance", "high bias"]}.get(self.dominant, [])
        flags = {"high bias": self.high_bias, "high variance": self.high_variance}
        self.remedies = [r for key in order if flags[key] for r in REMEDIES[key]] \
            or list(REMEDIES["good fit"])

    def __str__(self):
        def level(flag):
            return "high" if flag else "low"

        lines = [
            f"human-level error  {self.human_error:.4g}",
            f"training error     {self.train_error:.4g}",
            f"validation error   {self.val_error:.4g}",
            f"avoidable bias     {self.avoidable_bias:.4g}  (train - human: "
            f"{level(self.high_bias)} bias)",
            f"variance           {self.variance:.4g}  (val - train: "
            f"{level(self.high_variance)} variance)",
            f"diagnosis          {self.verdict}"
            + (f" ({self.dominant} dominates)" if self.dominant != "none" else ""),
            "remedies:",
        ]
        lines += [f"  - {r}" for r in self.remedies]
        return "\n".join(lines)

    def __repr__(self):
        return (f"Diagnosis({self.verdict!r}, avoidable_bias={self.avoidable_bias:.4g}, "
                f"variance={self.variance:.4g})")


def _check_error(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}={value!r}: expected a finite number (an error such as "
                         "0.05 for 5 %)")
    return float(value)


def diagnose(train_error, val_error, human_error=0.0, tol=0.02):
    """Bias-variance diagnosis from three errors, as in the lecture.

    avoidable bias = train - human; variance = val - train; a gap larger than ``tol``
    is "high". With the lecture's numbers (as fractions): human 0.005, train 0.05,
    val 0.06 is high bias, low variance; human 0.005, train 0.02, val 0.07 is high
    variance. For a fitted model, see :func:`diagnose_model`.

    Parameters
    ----------
    train_error, val_error : float
        In the same unit (fractions of misclassified samples, or MSE, ...).
    human_error : float
        Human-level error, a proxy for the Bayes (irreducible) error; 0 if unknown.
    tol : float
        The gap counted as high: 0.02 is two percentage points for error rates; choose
        it in the unit of the errors (e.g. relative to the noise variance for MSE).

    Returns
    -------
    Diagnosis
        ``str(diagnosis)`` is a printable report with the remedies.
    """
    train_error = _check_error(train_error, "train_error")
    val_error = _check_error(val_error, "val_error")
    human_error = _check_error(human_error, "human_error")
    tol = _check_error(tol, "tol")
    if tol < 0:
        raise ValueError(f"tol={tol!r}: expected a gap >= 0")
    return Diagnosis(train_error, val_error, human_error, tol)


def diagnose_model(model, X_train, y_train, X_val, y_val, human_error=0.0, tol=0.02,
                   metric=None):
    """:func:`diagnose` on a fitted model's errors on training and validation data
    (``metric`` as in :func:`score`; an error, so not ``'accuracy'`` or ``'r2'``)."""
    if not callable(metric) and metric in _HIGHER_IS_BETTER:
        raise ValueError(f"metric={metric!r} is a score (higher is better); diagnose "
                         "needs an error such as 'error', 'mse' or 'loss'")
    return diagnose(score(model, X_train, y_train, metric), score(model, X_val, y_val, metric),
                    human_error, tol)


# ================================================ polynomial regression demo
def polynomial_features(x, degree):
    """Columns ``x, x^2, ..., x^degree`` of each input feature (no cross terms, no
    constant column: the model's bias is theta_0).

    ``x`` of shape ``(n,)`` or ``(n, d)`` gives ``(n, d * degree)``.
    """
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or degree < 1:
        raise ValueError(f"degree={degree!r}: expected an integer >= 1")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"x has shape {x.shape}; expected (n,) or (n, d)")
    return np.concatenate([x ** p for p in range(1, degree + 1)], axis=1)


class PolynomialRegression:
    """``y = theta_0 + theta_1 x + ... + theta_d x^d``, fitted by least squares.

    The lecture's "match won" models: degree 1 underfits a quadratic, degree 4
    overfits it. The fit is the exact minimizer of the squared error (plus the ridge
    penalty ``alpha ||theta_1..d||^2``), which is what gradient descent on the same
    linear model converges to, without the wait.

    Parameters
    ----------
    degree : int
    alpha : float
        L2 (ridge) strength; 0 is ordinary least squares.
    """

    def __init__(self, degree=2, alpha=0.0):
        self.degree = degree
        self.alpha = alpha
        self.coef_ = self.intercept_ = None

    def fit(self, x, y):
        F = polynomial_features(x, self.degree)
        y = np.asarray(y, dtype=np.float64)
        xm, ym = F.mean(axis=0), y.mean(axis=0)
        Fc, yc = F - xm, y - ym
        if self.alpha:
            k = F.shape[1]
            A = np.vstack([Fc, np.sqrt(self.alpha) * np.eye(k)])
            b = np.concatenate([yc, np.zeros((k,) + yc.shape[1:])])
        else:
            A, b = Fc, yc
        self.coef_ = np.linalg.lstsq(A, b, rcond=None)[0]
        self.intercept_ = ym - xm @ self.coef_
        return self

    def predict(self, x):
        if self.coef_ is None:
            raise ValueError("PolynomialRegression is not fitted: call fit first")
        return polynomial_features(x, self.degree) @ self.coef_ + self.intercept_

    def __repr__(self):
        return f"PolynomialRegression(degree={self.degree}, alpha={self.alpha})"


def make_polynomial_data(n_samples, coef=(0.5, 1.0, -2.0), noise=0.3, x_range=(-1.0, 1.0),
                         seed=0):
    """Noisy samples of a polynomial: ``y = sum_p coef[p] x^p + N(0, noise^2)``.

    The default is a quadratic (the lecture's balanced fit). Returns ``x`` (n,) and ``y`` (n,).
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(x_range[0], x_range[1], n_samples)
    y = np.polynomial.polynomial.polyval(x, coef) + noise * rng.standard_normal(n_samples)
    return x, y


def polynomial_demo(degrees=(1, 2, 4), n_train=8, n_val=200, noise=0.3, n_repeats=20,
                    seed=0):
    """The lecture's underfit / balanced / overfit demo on noisy quadratic data.

    Each repeat draws ``n_train`` training samples at evenly spaced ``x`` in [-1, 1]
    (the lecture's ages) and ``n_val`` validation samples at random ``x`` in the same
    range, from ``y = 0.5 + x - 2 x^2 + N(0, noise^2)``; fits a
    :class:`PolynomialRegression` of each degree and scores the mean squared error on
    both. Averaging over repeats shows the expected errors rather than one lucky or
    unlucky draw. The noise variance ``noise**2`` is the irreducible error, the
    regression's "human level".

    Returns
    -------
    CurveResult
        ``param_name='degree'``; one column of train and validation MSE per repeat.
        ``result.fits`` reads the curve as the lecture does: the degree with the lowest
        mean validation error is ``'balanced'``, lower degrees ``'underfit'``, higher
        ones ``'overfit'``.
    """
    degrees = list(degrees)
    rng = np.random.default_rng(seed)
    coef = (0.5, 1.0, -2.0)
    xt = np.linspace(-1.0, 1.0, n_train)
    train = np.empty((len(degrees), n_repeats))
    val = np.empty_like(train)
    for r in range(n_repeats):
        yt = np.polynomial.polynomial.polyval(xt, coef) + noise * rng.standard_normal(n_train)
        xv, yv = make_polynomial_data(n_val, coef, noise, seed=int(rng.integers(2 ** 31)))
        for i, d in enumerate(degrees):
            model = PolynomialRegression(d).fit(xt, yt)
            train[i, r] = score(model, xt, yt, "mse")
            val[i, r] = score(model, xv, yv, "mse")
    result = CurveResult("degree", degrees, "mse", train, val)
    best = int(np.argmin(result.val_mean))
    result.fits = ["underfit" if i < best else "balanced" if i == best else "overfit"
                   for i in range(len(degrees))]
    return result
