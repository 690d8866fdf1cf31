"""The lesson: its forms agree (loop vs jit to the bit), its numbers are right, and
``python -m fastnn lesson --quick`` runs and reports agreement."""

import math

import numpy as np
import pytest

from fastnn import lesson
from fastnn.__main__ import main

# The lecture's worked example: 2 features, 4 samples as columns.
LECTURE_X = np.array([[2.0, -3.0, 8.0, 14.0], [6.0, 4.0, 17.0, 19.0]])
LECTURE_Y = np.array([0.0, 1.0, 1.0, 1.0])

GRADS = {"loop": lesson.logreg_grad_loop, "vec": lesson.logreg_grad_vec,
         "jit": lesson.logreg_grad_jit}
TRAINS = {"loop": lesson.logreg_train_loop, "vec": lesson.logreg_train_vec,
          "jit": lesson.logreg_train_jit}


@pytest.mark.parametrize("form", ["loop", "vec", "jit"])
def test_logreg_grad_on_the_lecture_data_by_hand(form):
    # w = 0, b = 0: every a = 1/2, dz = a - y = [1/2, -1/2, -1/2, -1/2]
    dw = np.empty(2)
    comp_J, comp_db = GRADS[form](LECTURE_X, LECTURE_Y, np.zeros(2), 0.0, dw)
    ref_dw = np.array([(1 + 1.5 - 4 - 7) / 4, (3 - 2 - 8.5 - 9.5) / 4])
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-15)
    assert comp_db == pytest.approx(-0.25, rel=1e-15)
    assert comp_J == pytest.approx(math.log(2), rel=1e-15)


def _logreg_J(X, Y, w, b):
    z = w @ X + b
    a = 1 / (1 + np.exp(-z))
    return float(np.mean(-Y * np.log(a) - (1 - Y) * np.log(1 - a)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (6, 40)], ids=str)
def test_logreg_grad_forms_agree_and_match_finite_differences(shape, dtype):
    n_x, m = shape
    rng = np.random.default_rng(sum(shape))
    X = rng.standard_normal(shape).astype(dtype)
    Y = (rng.random(m) > 0.5).astype(dtype)
    w = rng.standard_normal(n_x)
    b = 0.3
    out = {}
    for form, kernel in GRADS.items():
        dw = np.empty(n_x)
        out[form] = (*kernel(X, Y, w, b, dw), dw)
    ref_J, ref_db, ref_dw = out["loop"]
    comp_J, comp_db, comp_dw = out["jit"]
    assert comp_J == ref_J and comp_db == ref_db
    np.testing.assert_array_equal(comp_dw, ref_dw)
    comp_J, comp_db, comp_dw = out["vec"]
    np.testing.assert_allclose([comp_J, comp_db], [ref_J, ref_db], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(comp_dw, ref_dw, rtol=1e-12, atol=1e-15)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    h = 1e-6
    for j in range(n_x):
        e = np.zeros(n_x)
        e[j] = h
        num = (_logreg_J(X64, Y64, w + e, b) - _logreg_J(X64, Y64, w - e, b)) / (2 * h)
        assert ref_dw[j] == pytest.approx(num, rel=1e-6, abs=1e-8)
    num_db = (_logreg_J(X64, Y64, w, b + h) - _logreg_J(X64, Y64, w, b - h)) / (2 * h)
    assert ref_db == pytest.approx(num_db, rel=1e-6, abs=1e-8)


def test_logreg_training_gives_identical_weights_and_lowers_the_cost():
    X, Y = lesson.lecture_data(samples=60, features=4, seed=3)
    out = {}
    for form, train in TRAINS.items():
        w = np.zeros(4)
        costs = np.empty(25)
        b = train(X, Y, w, 0.0, 0.5, 25, costs)
        out[form] = (w, b, costs)
    ref_w, ref_b, ref_costs = out["loop"]
    comp_w, comp_b, comp_costs = out["jit"]
    np.testing.assert_array_equal(comp_w, ref_w)
    assert comp_b == ref_b
    np.testing.assert_array_equal(comp_costs, ref_costs)
    comp_w, comp_b, comp_costs = out["vec"]
    np.testing.assert_allclose(comp_w, ref_w, rtol=1e-12)
    assert comp_b == pytest.approx(ref_b, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(comp_costs, ref_costs, rtol=1e-12)
    assert ref_costs[0] == pytest.approx(math.log(2))
    assert np.all(np.diff(ref_costs) < 0)


@pytest.mark.parametrize("n", [1, 2, 1001])
def test_dot_forms(n):
    rng = np.random.default_rng(n)
    a, b = rng.random(n), rng.random(n)
    ref = math.fsum(a * b)
    assert lesson.dot_jit(a, b) == lesson.dot_loop(a, b)
    assert lesson.dot_loop(a, b) == pytest.approx(ref, rel=1e-13)
    assert lesson.dot_vec(a, b) == pytest.approx(ref, rel=1e-13)


@pytest.mark.parametrize("samples", [1, 13])
def test_two_layer_pass_forms_agree_and_match_finite_differences(samples):
    args = lesson.two_layer_params(samples, features=3, hidden=5, seed=samples)
    ref = lesson.net_pass_loop(*args)
    for comp_fn in (lesson.net_pass_vec, lesson.net_pass_jit, lesson.net_pass_loop_jit):
        comp = comp_fn(*args)
        for r, c in zip(ref, comp):
            np.testing.assert_allclose(c, r, rtol=1e-12, atol=1e-14)
    # dJ/dW1[0, 1] and dJ/db2 by central differences through the vectorized pass
    X, Y, W1, b1, W2, b2 = args
    h = 1e-6
    W1p, W1m = W1.copy(), W1.copy()
    W1p[0, 1] += h
    W1m[0, 1] -= h
    num = (lesson.net_pass_vec(X, Y, W1p, b1, W2, b2)[0]
           - lesson.net_pass_vec(X, Y, W1m, b1, W2, b2)[0]) / (2 * h)
    assert ref[1][0, 1] == pytest.approx(num, rel=1e-6, abs=1e-9)
    num = (lesson.net_pass_vec(X, Y, W1, b1, W2, b2 + h)[0]
           - lesson.net_pass_vec(X, Y, W1, b1, W2, b2 - h)[0]) / (2 * h)
    assert ref[4][0] == pytest.approx(num, rel=1e-6, abs=1e-9)


def test_run_lesson_forms_agree():
    experiments = lesson.run_lesson(dot_n=1000, samples=20, features=3, hidden=4,
                                    iterations=3, repeats=1)
    assert [e.name.split(",")[0] for e in experiments] == [
        "dot product", "logistic regression", "2-layer net fwd+bwd"]
    for exp in experiments:
        assert exp.agree, exp
        assert set(exp.times) >= {"loop", "vec", "jit"}
        assert all(t > 0 for t in exp.times.values())
    # the JIT compiles the loop itself: same bits for the dot product and the regression
    assert experiments[0].bitwise["jit"] and experiments[1].bitwise["jit"]


def test_gradient_descent_1d_paths_behave():
    paths = lesson.gradient_descent_paths(x0=4.0, steps=40)
    good, high, decay = (paths[k] for k in lesson.GD_CASES)
    assert good[1] == pytest.approx(4.0 - 0.1 * 2 * 4.0)  # x_1 = x_0 - v f'(x_0)
    assert np.all(np.diff(np.abs(good)) < 0) and abs(good[-1]) < 1e-3
    # too high: x jumps across the minimum every step and never gets closer
    assert np.all(np.sign(high[1:]) == -np.sign(high[:-1]))
    assert np.all(np.abs(high) >= 4.0 - 1e-12)
    # the same too-high rate, decayed: oscillates at first, then converges
    assert decay[1] == pytest.approx(-4.0) and abs(decay[-1]) < 1e-6


def test_gradient_descent_1d_decay_schedule():
    # v_i = lr / (1 + decay (i - 1)): step 2 uses 1.0 / 1.3
    path = lesson.gradient_descent_1d(lr=1.0, x0=4.0, steps=2, decay=0.3)
    np.testing.assert_allclose(path, [4.0, -4.0, -4.0 - (1.0 / 1.3) * 2 * -4.0])


def test_cli_lesson_quick_runs_and_forms_agree(capsys):
    assert main(["lesson", "--quick", "--dot-n", "5000", "--steps", "6"]) == 0
    out = capsys.readouterr().out
    assert "dot product, n=5,000" in out
    assert "FAILED" not in out and " NO " not in out
    assert out.count("bit for bit") >= 2
    assert "too high lr 1.0" in out and "final f(x)" in out


def test_cli_lesson_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "lesson.png"
    assert main(["lesson", "--quick", "--dot-n", "2000", "--samples", "20",
                 "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(target) in capsys.readouterr().out


def test_cli_lesson_rejects_bad_sizes():
    with pytest.raises(SystemExit, match="--samples=0"):
        main(["lesson", "--quick", "--samples", "0"])


def test_the_benchmark_suite_is_smoke_run_by_the_plain_test_command():
    # CI runs plain `pytest`: it must collect benchmarks/ and run each body once, untimed
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "benchmarks" in config["testpaths"]
    assert "--benchmark-disable" in config["addopts"].split()
    files = {p.stem for p in (root / "benchmarks").glob("test_bench_*.py")}
    assert files >= {f"test_bench_{name}" for name in (
        "activations", "dense", "dropout", "logreg", "losses", "norm", "optim", "training")}
