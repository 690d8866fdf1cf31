"""fastnn.sklearn: scikit-learn's own estimator checks, and the estimators inside
Pipeline, GridSearchCV and cross_val_score on the bundled datasets."""

import functools
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
# short max_iter on purpose in these tests; test_tol_rule_stops_and_max_iter_warns checks it
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn as fn  # noqa: E402
from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# Small networks and few epochs keep the checks fast; the public defaults are untouched.
_FAST = dict(hidden_layer_sizes=(16,), max_iter=50, learning_rate_init=0.01)
_EXTRAS = dict(hidden_layer_sizes=(16, 8), max_iter=30, learning_rate_init=0.01, dropout=0.1,
               batch_norm=True, early_stopping=True, dtype="float64")


def _expected_failures(estimator):
    if estimator.dtype == "float64" or not isinstance(estimator, MLPRegressor):
        return {}
    # OpenBLAS computes a product with one row or one column as a matrix-vector (or dot)
    # product, summing in another order: the regressor's 16 -> 1 output layer gives a
    # row alone and the same row in a batch of 30 float32 values an ulp apart (1.2e-7
    # measured), above the check's atol of 1e-7. float64 networks pass it, and so does
    # the float32 classifier, whose probabilities move far less than its logits' ulp.
    return {"check_methods_subset_invariance": "float32: one-row products round differently"}


@parametrize_with_checks([
    MLPClassifier(**_FAST),
    MLPRegressor(**_FAST),
    MLPClassifier(solver="rmsprop", **_EXTRAS),
    MLPRegressor(solver="sgd", optimizer_kwargs={"momentum": 0.9}, **_EXTRAS),
], expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_import_fastnn_without_sklearn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import fastnn\n"
            "try:\n"
            "    import fastnn.sklearn\n"
            "except ImportError as exc:\n"
            "    assert \"pip install 'fastnn[sklearn]'\" in str(exc), exc\n"
            "    print('no sklearn, fastnn ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "no sklearn, fastnn ok"


def test_defaults_follow_sklearn():
    clf = MLPClassifier()
    assert clf.hidden_layer_sizes == (100,) and clf.activation == "relu"
    assert clf.solver == "adam" and clf.alpha == 1e-4 and clf.max_iter == 200
    assert clf.batch_size == "auto" and clf.learning_rate_init == 1e-3
    assert clf.get_params()["dropout"] == 0.0 and clone(clf).get_params() == clf.get_params()


# ================================================================= classifier
@pytest.fixture(scope="module")
def cancer():
    X, y = fn.datasets.load_breast_cancer()
    return fn.train_test_split(X, y, test_size=0.25, stratify=True, seed=0)


def test_pipeline_breast_cancer_binary_one_logit(cancer):
    X_tr, X_te, y_tr, y_te = cancer
    pipe = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=60, random_state=0))
    pipe.fit(X_tr, y_tr)
    clf = pipe[-1]
    assert clf.model_.n_outputs == 1  # binary: one logit, binary cross-entropy
    assert clf.out_activation_ == "logistic" and clf.n_layers_ == 3
    assert clf.n_features_in_ == 30 and clf.classes_.tolist() == [0, 1]
    proba = pipe.predict_proba(X_te)
    assert proba.shape == (len(X_te), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(pipe.predict(X_te), clf.classes_[proba.argmax(axis=1)])
    assert pipe.score(X_te, y_te) > 0.95
    assert len(clf.loss_curve_) == clf.n_iter_ <= 60
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert [c.shape for c in clf.coefs_] == [(30, 32), (32, 1)]


def test_string_labels_multiclass_digits():
    X, y = fn.datasets.load_digits()
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    X_tr, X_te, y_tr, y_te = fn.train_test_split(X / 16, names[y], test_size=0.3,
                                                 stratify=True)
    clf = MLPClassifier((32,), max_iter=60, random_state=0).fit(X_tr, y_tr)
    assert clf.classes_.tolist() == sorted(names.tolist())
    assert clf.model_.n_outputs == 10
    pred = clf.predict(X_te)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    assert clf.score(X_te, y_te) > 0.93
    assert clf.predict_proba(X_te).shape == (len(X_te), 10)


def test_cross_val_score_and_grid_search_cv(cancer):
    X_tr, _, y_tr, _ = cancer  # the test partition stays out of the tuning
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=30, random_state=0))
    scores = cross_val_score(pipe, X_tr, y_tr, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.9
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 30.0]}, cv=3)
    search.fit(X_tr, y_tr)
    means = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"mlpclassifier__alpha": 1e-4} and means[0] > means[1]


def test_fn_grid_search_with_the_estimator_and_fastnn_folds(cancer):
    X_tr, _, y_tr, _ = cancer

    def build(alpha):
        return make_pipeline(StandardScaler(), MLPClassifier((16,), alpha=alpha, max_iter=30,
                                                             random_state=0))

    search = fn.grid_search(build, {"alpha": [1e-4, 3.0, 100.0]}, X_tr, y_tr, n_splits=3)
    errors = [r["val_mean"] for r in search.results]
    assert search.metric == "error"
    assert search.best_score < max(errors) and search.best_params["alpha"] != 100.0


def test_partial_fit_continues_training(cancer):
    X_tr, _, y_tr, _ = cancer
    X = StandardScaler().fit_transform(X_tr)
    clf = MLPClassifier((16,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y_tr)
    clf.partial_fit(X[:100], y_tr[:100], classes=[0, 1])
    first = clf.coefs_[0].copy()
    for _ in range(10):
        clf.partial_fit(X, y_tr)
    assert clf.n_iter_ == 11 and len(clf.loss_curve_) == 11
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    assert not np.array_equal(first, clf.coefs_[0])
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:3], [0, 1, 2])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :5], y_tr)


def test_partial_fit_all_labels_declared_up_front():
    X = np.random.default_rng(0).standard_normal((20, 3))
    clf = MLPClassifier((4,), random_state=0).partial_fit(X[:5], ["a"] * 5, classes=list("abc"))
    assert clf.classes_.tolist() == ["a", "b", "c"] and clf.model_.n_outputs == 3
    assert clf.predict_proba(X).shape == (20, 3)


def test_one_class_is_an_error():
    with pytest.raises(ValueError, match="1 class"):
        MLPClassifier().fit(np.zeros((4, 2)), [1, 1, 1, 1])


def test_random_state_reproducible_and_seeds_differ(cancer):
    X_tr, X_te, y_tr, _ = cancer
    X = StandardScaler().fit(X_tr)
    a = MLPClassifier((8,), max_iter=5, random_state=3).fit(X.transform(X_tr), y_tr)
    b = MLPClassifier((8,), max_iter=5, random_state=3).fit(X.transform(X_tr), y_tr)
    c = MLPClassifier((8,), max_iter=5, random_state=4).fit(X.transform(X_tr), y_tr)
    pa, pb, pc = (m.predict_proba(X.transform(X_te)) for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pc)


def test_pickle_keeps_predictions_and_resumes_identically(cancer):
    X_tr, _, y_tr, _ = cancer
    X = StandardScaler().fit_transform(X_tr)
    clf = MLPClassifier((8,), max_iter=5, random_state=0, dtype="float64").fit(X, y_tr)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # the copy's layers, flat buffer and optimizer are tied together again: it trains
    clf.partial_fit(X, y_tr)
    copy.partial_fit(X, y_tr)
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert np.shares_memory(copy.coefs_[0], copy.model_.flat_parameters)


# ==================================================================== options
def test_early_stopping_holds_out_data_and_stops(cancer):
    X_tr, _, y_tr, _ = cancer
    X = StandardScaler().fit_transform(X_tr)
    clf = MLPClassifier((64,), max_iter=500, early_stopping=True, n_iter_no_change=5,
                        learning_rate_init=0.01, random_state=0).fit(X, y_tr)
    assert clf.n_iter_ < 500
    assert len(clf.validation_loss_curve_) == clf.n_iter_
    assert clf.t_ == clf.n_iter_ * (len(X) - int(np.ceil(0.1 * len(X))))
    tiny = MLPRegressor((4,), early_stopping=True, max_iter=3, random_state=0)
    tiny.fit(X[:5], y_tr[:5].astype(float))  # 10 % of 5 samples is still one sample
    assert tiny.t_ == 3 * 4


def test_tol_rule_stops_and_max_iter_warns():
    X, y = fn.datasets.load_diabetes()
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        MLPRegressor((8,), max_iter=3, random_state=0).fit(X, y)
    reg = MLPRegressor((8,), max_iter=1000, tol=0.05, n_iter_no_change=2,
                       random_state=0).fit(X, y)
    assert reg.n_iter_ < 1000


@pytest.mark.parametrize("solver", ["sgd", "momentum", "rmsprop", "adam", "adamw"])
def test_every_solver_trains(solver):
    X, y = fn.datasets.load_diabetes()
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    lr = 0.05 if solver in ("sgd", "momentum") else 0.01
    reg = MLPRegressor((16,), solver=solver, learning_rate_init=lr, max_iter=40,
                       random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    assert type(reg._optimizer).__name__.lower() == solver
    assert reg.score(X, y) > 0.45  # least squares gets 0.52


def test_regressor_multi_output_and_layers():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    Y = np.column_stack([X[:, 0] - X[:, 1], X[:, 2] * 0.5])
    reg = MLPRegressor((32,), max_iter=200, learning_rate_init=0.01, random_state=0,
                       batch_size=32, batch_norm=True, activation="tanh").fit(X, Y)
    assert reg.predict(X).shape == (200, 2) and reg.n_outputs_ == 2
    assert reg.score(X, Y) > 0.95
    kinds = [type(layer).__name__ for layer in reg.model_.layers]
    assert kinds == ["Dense", "BatchNorm", "Activation", "Dense"]
    drop = MLPRegressor((8, 4), dropout=0.2, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        drop.fit(X, Y[:, 0])
    assert [type(layer).__name__ for layer in drop.model_.layers] == [
        "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert drop.predict(X).shape == (200,)


def test_alpha_is_the_l2_of_fit(monkeypatch):
    seen = {}
    original = fn.Sequential.fit

    @functools.wraps(original)  # keeps the signature the estimator inspects
    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fn.Sequential, "fit", spy)
    X = np.random.default_rng(0).standard_normal((30, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPRegressor((4,), alpha=0.5, l1=0.1, max_iter=2, batch_size=7,
                     solver="sgd", verbose=0).fit(X, X[:, 0])
    assert seen["l2"] == 0.5 and seen["l1"] == 0.1 and seen["batch_size"] == 7
    assert seen["epochs"] == 2 and seen["loss"] == "mse"


@pytest.mark.parametrize("params, match", [
    (dict(solver="lbfgs"), "solver"),
    (dict(activation="swish"), "activation"),
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(alpha=-1.0), "alpha"),
    (dict(dropout=1.0), "dropout"),
    (dict(batch_size=0), "batch_size"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(optimizer_kwargs=[1]), "optimizer_kwargs"),
])
def test_bad_hyperparameters_raise_on_fit(params, match):
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_missing_pieces_raise_instead_of_being_ignored(monkeypatch):
    import fastnn.layers

    monkeypatch.delattr(fastnn.layers, "Dropout")
    with pytest.raises(NotImplementedError, match="dropout needs fastnn.Dropout"):
        MLPClassifier(dropout=0.5).fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_verbose_shows_progress(capsys):
    X = np.random.default_rng(0).standard_normal((30, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPRegressor((4,), max_iter=3, verbose=2, n_iter_no_change=50).fit(X, X[:, 0])
    err = capsys.readouterr().err
    assert "epoch 3/3 - loss:" in err
    MLPRegressor((4,), max_iter=3, n_iter_no_change=50, tol=0.0).partial_fit(X, X[:, 0])
    assert capsys.readouterr().err == ""
