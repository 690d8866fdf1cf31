"""Splits, folds, cross-validation, grid search, curves and the bias-variance diagnosis."""

import numpy as np
import pytest

import fastnn as fn
from fastnn import model_selection as ms


# ====================================================================== splits
@pytest.mark.parametrize("n", [10, 97, 569])
@pytest.mark.parametrize("sizes", [(0.2, 0.2), (0.1, 0.3), (0, 0.25), (5, 7)])
def test_split_sizes_partition_the_samples(n, sizes):
    val_size, test_size = sizes
    if isinstance(val_size, int) and val_size + test_size >= n:
        pytest.skip("counts larger than the data")
    X = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n)
    X_tr, X_va, X_te, y_tr, y_va, y_te = fn.train_val_test_split(
        X, y, val_size=val_size, test_size=test_size, seed=1)
    exp_val = val_size if isinstance(val_size, int) else round(val_size * n)
    exp_test = test_size if isinstance(test_size, int) else round(test_size * n)
    assert (len(y_va), len(y_te), len(y_tr)) == (exp_val, exp_test, n - exp_val - exp_test)
    # disjoint and covering, rows kept together
    assert sorted(np.concatenate([y_tr, y_va, y_te]).tolist()) == list(range(n))
    for Xp, yp in ((X_tr, y_tr), (X_va, y_va), (X_te, y_te)):
        np.testing.assert_array_equal(Xp[:, 0], 2 * yp)


def test_split_is_seeded():
    X = np.arange(50)[:, None]
    a = fn.train_val_test_split(X, seed=3)
    b = fn.train_val_test_split(X, seed=3)
    c = fn.train_val_test_split(X, seed=4)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[2], c[2])
    assert len(a) == 3  # no y, no y parts


def test_no_shuffle_keeps_order():
    X = np.arange(10)[:, None]
    X_tr, X_te = fn.train_test_split(X, test_size=0.3, shuffle=False)
    assert X_te.ravel().tolist() == [0, 1, 2] and X_tr.ravel().tolist() == list(range(3, 10))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_split_keeps_class_proportions(seed):
    X, y = fn.datasets.load_breast_cancer()
    parts = fn.train_val_test_split(X, y, val_size=0.2, test_size=0.2, stratify=True,
                                    seed=seed)
    p = np.bincount(y) / len(y)
    for yp in parts[3:]:
        # each class within one sample of its exact share
        assert np.all(np.abs(np.bincount(yp, minlength=2) - p * len(yp)) <= 1.0)


def test_stratified_split_digits_ten_classes():
    X, y = fn.datasets.load_digits()
    X_tr, X_te, y_tr, y_te = fn.train_test_split(X, y, test_size=0.25, stratify=True)
    assert len(y_te) == round(0.25 * len(y))
    share = np.bincount(y) / len(y)
    assert np.all(np.abs(np.bincount(y_te) - share * len(y_te)) <= 1.0)
    assert np.all(np.abs(np.bincount(y_tr) - share * len(y_tr)) <= 1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(val_size=0.5, test_size=0.5), "no training sample"),
    (dict(test_size=1.5), "fraction"),
    (dict(test_size=-1), "count"),
    (dict(test_size="a"), "fraction"),
])
def test_split_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn.train_val_test_split(np.zeros((10, 1)), np.zeros(10), **kwargs)


def test_split_rejects_mismatched_lengths_and_stratify_without_y():
    with pytest.raises(ValueError, match="one target per sample"):
        fn.train_test_split(np.zeros((10, 1)), np.zeros(9))
    with pytest.raises(ValueError, match="needs y"):
        fn.train_test_split(np.zeros((10, 1)), stratify=True)


# ====================================================================== folds
@pytest.mark.parametrize("n, k", [(10, 2), (23, 5), (100, 10), (5, 5)])
@pytest.mark.parametrize("cls", [fn.KFold, fn.StratifiedKFold])
def test_folds_are_disjoint_and_cover(n, k, cls):
    X = np.zeros((n, 1))
    y = np.arange(n) % 2 if cls is fn.KFold else np.repeat([0, 1], [n - n // 2, n // 2])
    if cls is fn.StratifiedKFold and min(np.bincount(y)) < k:
        pytest.skip("fewer samples per class than folds")
    folds = list(cls(k, seed=1).split(X, y))
    assert len(folds) == k == cls(k).get_n_splits()
    vals = np.concatenate([va for _, va in folds])
    assert sorted(vals.tolist()) == list(range(n))  # each sample validated exactly once
    sizes = [len(va) for _, va in folds]
    assert max(sizes) - min(sizes) <= 1
    for tr, va in folds:
        assert np.intersect1d(tr, va).size == 0
        assert len(tr) + len(va) == n


def test_kfold_without_shuffle_is_contiguous_blocks():
    folds = list(fn.KFold(3, shuffle=False).split(np.zeros((7, 1))))
    assert [va.tolist() for _, va in folds] == [[0, 1, 2], [3, 4], [5, 6]]
    assert folds[1][0].tolist() == [0, 1, 2, 5, 6]


def test_stratified_kfold_keeps_class_shares_in_every_fold():
    X, y = fn.datasets.load_digits()
    counts = np.bincount(y)
    for tr, va in fn.StratifiedKFold(5, seed=0).split(X, y):
        c = np.bincount(y[va], minlength=10)
        assert np.all((c == counts // 5) | (c == counts // 5 + 1))


def test_stratified_kfold_warns_on_a_rare_class():
    y = np.array([0] * 10 + [1] * 2)
    with pytest.warns(UserWarning, match="smallest class"):
        list(fn.StratifiedKFold(3).split(np.zeros((12, 1)), y))


def test_kfold_rejects_bad_arguments():
    with pytest.raises(ValueError, match="integer >= 2"):
        fn.KFold(1)
    with pytest.raises(ValueError, match="at least 5 samples"):
        list(fn.KFold(5).split(np.zeros((3, 1))))


def test_kfold_works_as_sklearn_cv():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    X, y = fn.datasets.load_breast_cancer()
    X = (X - X.mean(0)) / X.std(0)
    scores = cross_val_score(LogisticRegression(), X, y, cv=fn.StratifiedKFold(4))
    assert len(scores) == 4 and scores.mean() > 0.95


# ============================================================ cross-validation
def _build_digits(hidden=16, seed=0):
    net = fn.Sequential([fn.Dense(64, hidden, "relu"), fn.Dense(hidden, 10)], seed=seed)
    net.optimizer = fn.optim.SGD(net.parameters(), lr=0.1)  # fit uses the model's optimizer
    return ms.Standardized(net)


def test_cross_validate_digits_scores_per_fold():
    X, y = fn.datasets.load_digits()
    res = fn.cross_validate(_build_digits, X, y, n_splits=3,
                            fit_kwargs=dict(loss="softmax_cross_entropy", epochs=8,
                                            batch_size=32))
    assert res.metric == "error"
    assert res.train_scores.shape == res.val_scores.shape == (3,)
    assert len(res.models) == 3 and res.models[0] is not res.models[1]
    np.testing.assert_allclose(res.val_mean, res.val_scores.mean())
    np.testing.assert_allclose(res.val_std, res.val_scores.std())
    # a real network on real data: well below chance (0.9), train below validation
    assert res.val_mean < 0.2
    assert res.train_mean <= res.val_mean + 0.02
    # the scores are what the fold models give on the fold data
    folds = list(fn.StratifiedKFold(3, seed=0).split(X, y))
    tr, va = folds[1]
    model = res.models[1]
    assert res.val_scores[1] == pytest.approx(np.mean(model.predict(X[va]) != y[va]))
    assert res.train_scores[1] == pytest.approx(np.mean(model.predict(X[tr]) != y[tr]))


def test_cross_validate_regression_defaults_to_mse_and_kfold():
    x, y = ms.make_polynomial_data(60, seed=0)
    res = fn.cross_validate(ms.PolynomialRegression, x[:, None], y, n_splits=4,
                            params={"degree": 2})
    assert res.metric == "mse"
    assert 0.03 < res.val_mean < 0.2  # noise variance 0.09
    folds = list(fn.KFold(4, seed=0).split(x))
    tr, va = folds[2]
    m = ms.PolynomialRegression(2).fit(x[tr], y[tr])
    assert res.val_scores[2] == pytest.approx(np.mean((m.predict(x[va]) - y[va]) ** 2))


def test_score_metrics():
    x, y = ms.make_polynomial_data(50, seed=1)
    m = ms.PolynomialRegression(2).fit(x, y)
    mse = ms.score(m, x, y, "mse")
    assert ms.score(m, x, y) == mse
    assert ms.score(m, x, y, "r2") == pytest.approx(1 - mse / np.var(y))
    assert ms.score(m, x, y, lambda model, X, y: 7.0) == 7.0
    with pytest.raises(ValueError, match="metric"):
        ms.score(m, x, y, "f1")


# ================================================================ grid search
def test_grid_search_ridge_on_diabetes_beats_the_worst_point_and_never_sees_test():
    X, y = fn.datasets.load_diabetes()
    X_tv, X_te, y_tv, y_te = fn.train_test_split(X, y, test_size=0.2, seed=0)
    seen = []

    def build(degree=3, alpha=0.0):
        model = ms.PolynomialRegression(degree, alpha)
        fit = model.fit

        def spy(X_fit, y_fit):
            seen.append(X_fit)
            return fit(X_fit, y_fit)

        model.fit = spy
        return model

    Xs = (X_tv - X_tv.mean(0)) / X_tv.std(0)
    grid = {"alpha": [0.0, 1.0, 30.0, 300.0, 1e5]}
    search = fn.grid_search(build, grid, Xs, y_tv, n_splits=5)
    means = [r["val_mean"] for r in search.results]
    assert search.best_score == min(means) < max(means)
    assert search.best_params["alpha"] not in (0.0, 1e5)  # no reg overfits; 1e5 underfits
    assert search.best_score < 0.9 * max(means)
    # the test partition was never handed to any fit
    test_rows = {r.tobytes() for r in (X_te - X_tv.mean(0)) / X_tv.std(0)}
    assert len(seen) == 5 * 5 + 1  # folds x points + the refit
    assert all(r.tobytes() not in test_rows for Xf in seen for r in Xf)
    assert search.best_model is not None and "alpha" in search.table()


def test_grid_search_l2_of_a_network_on_digits_keeps_the_test_set_unseen():
    X, y = fn.datasets.load_digits()
    X_tv, X_te, y_tv, y_te = fn.train_test_split(X / 16.0, y, test_size=0.2, stratify=True)
    fitted_on = []

    class Spy(fn.Sequential):
        def fit(self, X, y, **kwargs):
            fitted_on.append(np.asarray(X))
            return super().fit(X, y, **kwargs)

    def build():
        net = Spy([fn.Dense(64, 64, "relu"), fn.Dense(64, 10)], seed=0)
        net.optimizer = fn.optim.SGD(net.parameters(), lr=0.1)
        return net

    # l2 is not an argument of build, so the search passes it to fit
    search = fn.grid_search(build, {"l2": [0.0, 0.3, 3.0, 30.0]}, X_tv, y_tv, n_splits=3,
                            fit_kwargs=dict(loss="softmax_cross_entropy", epochs=10,
                                            batch_size=32))
    errors = [r["val_mean"] for r in search.results]
    worst = int(np.argmax(errors))
    assert search.results[worst]["params"] == {"l2": 30.0}  # so strong it underfits
    assert search.best_params["l2"] in (0.0, 0.3)
    assert search.best_score < errors[worst] - 0.5
    under = fn.diagnose(search.results[worst]["train_mean"], errors[worst])
    assert under.verdict == "high bias"
    # the tuning never saw a test row (rows that also occur in train+val aside)
    tv_rows = {r.tobytes() for r in X_tv}
    test_only = {r.tobytes() for r in X_te} - tv_rows
    assert len(fitted_on) == 4 * 3 + 1
    assert not any(r.tobytes() in test_only for Xf in fitted_on for r in Xf)
    # only now, once, the test set: the refitted best network generalizes
    assert search.best_model.evaluate(X_te, y_te)["accuracy"] > 0.93


def test_grid_search_routes_params_to_build_and_fit():
    calls = []

    class M:
        def __init__(self, width):
            self.width = width

        def fit(self, X, y, epochs=1):
            calls.append((self.width, epochs))
            self.mean = y.mean()

        def predict(self, X):
            return np.full(len(X), self.mean)

    X = np.zeros((12, 1))
    y = np.arange(12.0)
    search = fn.grid_search(M, {"width": [1, 2], "epochs": [3]}, X, y, n_splits=3,
                            refit=False)
    assert sorted(set(calls)) == [(1, 3), (2, 3)]
    assert search.best_model is None and len(search.results) == 2
    with pytest.raises(ValueError, match="list of values"):
        fn.grid_search(M, {"width": 3}, X, y)


# ===================================================================== curves
def test_learning_curve_training_error_rises_and_validation_falls_with_data():
    x, y = ms.make_polynomial_data(200, seed=0)
    res = fn.learning_curve(lambda: ms.PolynomialRegression(4), x[:, None], y,
                            train_sizes=(8, 0.5, 1.0), n_splits=4)
    assert res.values.tolist() == [8, 75, 150]
    assert res.train_scores.shape == (3, 4)
    assert res.val_mean[0] > res.val_mean[-1]
    assert res.train_mean[0] < res.train_mean[-1]
    gap = res.val_mean - res.train_mean
    assert gap[0] > gap[-1]  # high variance shrinks with more data
    with pytest.raises(ValueError, match="train_sizes"):
        fn.learning_curve(ms.PolynomialRegression, x[:, None], y, train_sizes=(1000,))


def test_validation_curve_traces_the_tradeoff():
    x, y = ms.make_polynomial_data(40, seed=2, noise=0.3)
    res = fn.validation_curve(ms.PolynomialRegression, x[:, None], y, "degree", [1, 2, 8],
                              n_splits=5)
    assert res.param_name == "degree" and res.values.tolist() == [1, 2, 8]
    assert res.train_mean[0] > res.train_mean[1] > res.train_mean[2]
    assert np.argmin(res.val_mean) == 1


def test_epoch_curve_digits():
    X, y = fn.datasets.load_digits()
    X_tr, X_va, y_tr, y_va = fn.train_test_split(X / 16.0, y, test_size=0.3, stratify=True)

    def build():
        return fn.Sequential([fn.Dense(64, 32, "relu"), fn.Dense(32, 10)], seed=0)

    res = fn.epoch_curve(build, X_tr, y_tr, X_va, y_va, epochs=6,
                         fit_kwargs=dict(loss="softmax_cross_entropy", batch_size=32,
                                         optimizer="sgd"))
    assert res.values.tolist() == [1, 2, 3, 4, 5, 6]
    assert res.train_scores.shape == (6, 1)
    assert res.train_mean[-1] < res.train_mean[0]
    assert res.val_mean[-1] < res.val_mean[0]
    assert 0 <= res.train_mean.min() and res.val_mean.max() <= 1


# ================================================================= diagnosis
def test_diagnose_lecture_left_high_bias_low_variance():
    d = fn.diagnose(train_error=0.05, val_error=0.06, human_error=0.005)
    assert d.avoidable_bias == pytest.approx(0.045)
    assert d.variance == pytest.approx(0.01)
    assert d.high_bias and not d.high_variance
    assert d.dominant == "bias" and d.verdict == "high bias"
    assert d.remedies == ms.REMEDIES["high bias"]
    assert "bigger network" in str(d) and "more epochs" in str(d)


def test_diagnose_lecture_right_high_variance():
    d = fn.diagnose(0.02, 0.07, human_error=0.005)
    assert d.avoidable_bias == pytest.approx(0.015)
    assert d.variance == pytest.approx(0.05)
    assert not d.high_bias and d.high_variance
    assert d.dominant == "variance" and d.verdict == "high variance"
    text = str(d)
    for remedy in ("more training data", "regularization", "early stopping"):
        assert remedy in text


def test_diagnose_both_and_neither():
    both = fn.diagnose(0.10, 0.20, 0.01)
    assert both.verdict == "high bias and high variance" and both.dominant == "variance"
    assert both.remedies[:3] == ms.REMEDIES["high variance"]
    assert both.remedies[3:] == ms.REMEDIES["high bias"]
    good = fn.diagnose(0.01, 0.015, 0.005)
    assert good.verdict == "good fit" and good.dominant == "none"
    assert good.remedies == ["you are done!"]
    with pytest.raises(ValueError, match="train_error"):
        fn.diagnose("5%", 0.1)
    with pytest.raises(ValueError, match="tol"):
        fn.diagnose(0.1, 0.1, tol=-1)


def test_diagnose_model_uses_the_model_errors():
    x, y = ms.make_polynomial_data(30, seed=0)
    xv, yv = ms.make_polynomial_data(200, seed=1)
    m = ms.PolynomialRegression(1).fit(x, y)
    d = fn.diagnose_model(m, x, y, xv, yv, human_error=0.09, tol=0.05)
    assert d.train_error == pytest.approx(ms.score(m, x, y, "mse"))
    assert d.verdict.startswith("high bias")
    with pytest.raises(ValueError, match="higher is better"):
        fn.diagnose_model(m, x, y, xv, yv, metric="r2")


# =========================================================== polynomial demo
def test_polynomial_features():
    F = ms.polynomial_features([1.0, 2.0, -1.0], 3)
    np.testing.assert_array_equal(F, [[1, 1, 1], [2, 4, 8], [-1, 1, -1]])
    assert ms.polynomial_features(np.ones((4, 2)), 2).shape == (4, 4)
    with pytest.raises(ValueError, match="degree"):
        ms.polynomial_features([1.0], 0)


def test_polynomial_regression_recovers_a_noiseless_quadratic():
    x = np.linspace(-1, 1, 9)
    m = ms.PolynomialRegression(2).fit(x, 0.5 + x - 2 * x ** 2)
    np.testing.assert_allclose(m.coef_, [1.0, -2.0], atol=1e-12)
    assert m.intercept_ == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_polynomial_demo_underfit_balanced_overfit(seed):
    res = ms.polynomial_demo(degrees=(1, 2, 4), seed=seed)
    assert res.fits == ["underfit", "balanced", "overfit"]
    train, val = res.train_mean, res.val_mean
    assert train[0] > train[1] > train[2]  # more capacity always fits the training set better
    assert val[1] < val[2] < val[0]
    noise_var = 0.3 ** 2
    assert train[0] - noise_var > 3 * noise_var  # degree 1: large avoidable bias
    assert val[2] - train[2] > val[1] - train[1]  # degree 4: the widest gap
