"""The command line end to end: train, predict and evaluate on CSV files written here."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fn
from fastnn.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return str(path)


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """CSV files from the bundled datasets: breast cancer with text labels (binary),
    digits with labels 0..9, diabetes (regression)."""
    d = tmp_path_factory.mktemp("csv")
    X, y, names = fn.datasets.load_breast_cancer(return_feature_names=True)
    X, y = X[:300, :8], y[:300]
    labels = np.array(["malignant", "benign"])[y]
    cancer = _write_csv(d / "cancer.csv", list(names[:8]) + ["diagnosis"],
                        [[repr(float(v)) for v in row] + [t] for row, t in zip(X, labels)])
    Xd, yd = fn.datasets.load_digits()
    Xd, yd = Xd[:300, ::4], yd[:300]
    digits = _write_csv(d / "digits.csv", [f"px{i}" for i in range(16)] + ["digit"],
                        [[int(v) for v in row] + [int(t)] for row, t in zip(Xd, yd)])
    Xr, yr, rnames = fn.datasets.load_diabetes(return_feature_names=True)
    diabetes = _write_csv(d / "diabetes.csv", list(rnames) + ["progression"],
                          [[repr(float(v)) for v in row] + [repr(float(t))]
                           for row, t in zip(Xr, yr)])
    return {"dir": d, "cancer": (cancer, X, labels, list(names[:8])),
            "digits": (digits, Xd, yd), "diabetes": (diabetes, Xr, yr, list(rnames))}


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _metric(out, line_start, name):
    for line in out.splitlines():
        if line.startswith(line_start):
            words = line.split()
            return float(words[words.index(name) + 1])
    raise AssertionError(f"no line {line_start!r} in {out!r}")


# ------------------------------------------------------------------ classification
def test_train_predict_evaluate_binary_text_labels(data, tmp_path, capsys):
    path, X, labels, names = data["cancer"]
    model_path = tmp_path / "cancer.npz"
    code, out, err = _run(capsys, "train", path, "--target", "diagnosis", "--epochs", 8,
                          "--hidden", "16", "--lr", "0.01", "-o", model_path)
    assert code == 0, err
    assert "classification (2 classes)" in out
    # learned something: the majority class is 63% of the rows
    assert _metric(out, "train ", "accuracy") > 0.8
    assert _metric(out, "validation ", "accuracy") > 0.75
    assert "epoch" in err  # the progress display
    model = fn.load(model_path)
    meta = model.metadata
    assert meta["task"] == "classification" and meta["target"] == "diagnosis"
    assert meta["classes"] == ["benign", "malignant"] and meta["features"] == names
    assert model.loss.name == "binary_cross_entropy" and model.n_outputs == 1

    pred_path = tmp_path / "pred.csv"
    code, _, err = _run(capsys, "predict", model_path, path, "-o", pred_path)
    assert code == 0 and "wrote 300 predictions" in err
    header, rows = _read_csv(pred_path)
    assert header == ["diagnosis", "p(benign)", "p(malignant)"]
    assert len(rows) == 300
    comp = [r[0] for r in rows]
    ref = np.array(meta["classes"])[model.predict((X - meta["feature_mean"])
                                                  / meta["feature_std"])]
    assert comp == list(ref)
    proba = np.array([[float(p) for p in r[1:]] for r in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert all((p[1] > 0.5) == (c == "malignant") for p, c in zip(proba, comp))

    code, out, err = _run(capsys, "evaluate", model_path, path, "--target", "diagnosis")
    assert code == 0, err
    assert _metric(out, path, "accuracy") == pytest.approx(np.mean(np.array(comp) == labels),
                                                           abs=5e-5)


def test_multiclass_integer_labels_and_options(data, tmp_path, capsys):
    path, X, y = data["digits"]
    model_path = tmp_path / "digits.npz"
    code, out, err = _run(capsys, "train", path, "--target", "digit", "--epochs", 6,
                          "--hidden", "24,12", "--dropout", "0.1", "--batch-norm",
                          "--optimizer", "sgd", "--lr", "0.1", "--val-split", "0",
                          "--dtype", "float64", "-q", "-o", model_path)
    assert code == 0, err
    assert err == ""  # --quiet: no progress display
    assert "classification (10 classes)" in out and "validation" not in out
    model = fn.load(model_path)
    assert [type(la).__name__ for la in model.layers] == [
        "Dense", "BatchNorm", "Activation", "Dropout",
        "Dense", "BatchNorm", "Activation", "Dropout", "Dense"]
    assert model.dtype == np.float64 and model.metadata["classes"] == list(range(10))
    # the scaler: the training rows' means and standard deviations (all rows here)
    np.testing.assert_allclose(model.metadata["feature_mean"], X.mean(axis=0), rtol=1e-12)
    std = X.std(axis=0)
    np.testing.assert_allclose(model.metadata["feature_std"], np.where(std > 0, std, 1.0),
                               rtol=1e-12)
    # columns in another order, plus an unknown one: matched by name
    header, rows = _read_csv(path)
    perm = [16, 3] + [i for i in range(16) if i != 3]
    shuffled = _write_csv(tmp_path / "shuffled.csv", ["extra"] + [header[i] for i in perm],
                          [["z"] + [r[i] for i in perm] for r in rows])
    code, out_a, _ = _run(capsys, "predict", model_path, path)
    assert code == 0
    code, out_b, _ = _run(capsys, "predict", model_path, shuffled)
    assert code == 0 and out_a == out_b
    lines = out_a.splitlines()
    assert lines[0].split(",")[:3] == ["digit", "p(0)", "p(1)"] and len(lines) == 301
    code, out, _ = _run(capsys, "evaluate", model_path, path)  # --target from the model
    assert code == 0
    comp = np.array([int(line.split(",")[0]) for line in lines[1:]])
    assert _metric(out, path, "accuracy") == pytest.approx(np.mean(comp == y), abs=5e-5)


# ---------------------------------------------------------------------- regression
def test_train_predict_evaluate_regression(data, tmp_path, capsys):
    path, X, y, names = data["diabetes"]
    model_path = tmp_path / "diabetes.npz"
    code, out, err = _run(capsys, "train", path, "--target", "progression", "--epochs", 15,
                          "--hidden", "16", "--lr", "0.01", "-q", "-o", model_path)
    assert code == 0, err
    assert "'progression': regression" in out
    assert _metric(out, "train ", "r2") > 0.3
    model = fn.load(model_path)
    mean, std = model.metadata["target_scale"]
    assert mean == pytest.approx(np.mean(y), rel=0.1) and model.loss.name == "mse"
    code, pred_out, _ = _run(capsys, "predict", model_path, path)
    assert code == 0
    lines = pred_out.splitlines()
    assert lines[0] == "progression" and len(lines) == 1 + len(y)
    pred = np.array([float(v) for v in lines[1:]])
    ref = model.predict((X - model.metadata["feature_mean"]) / model.metadata["feature_std"])
    np.testing.assert_array_equal(pred.astype(np.float32), (ref * std + mean))
    code, out, _ = _run(capsys, "evaluate", model_path, path)
    assert code == 0
    rmse = np.sqrt(np.mean((pred - y) ** 2))
    assert _metric(out, path, "rmse") == pytest.approx(rmse, abs=1e-3)
    r2 = 1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert _metric(out, path, "r2") == pytest.approx(r2, abs=1e-3)


def test_task_flag_overrides_the_inference(data, tmp_path, capsys):
    path = data["digits"][0]
    code, out, err = _run(capsys, "train", path, "--target", "digit", "--task", "regression",
                          "--epochs", 1, "--hidden", "", "-q", "-o", tmp_path / "m.npz")
    assert code == 0, err
    assert "'digit': regression" in out
    model = fn.load(tmp_path / "m.npz")
    assert model.metadata["task"] == "regression" and len(model.layers) == 1


def test_task_inference():
    from fastnn import _tabular

    assert _tabular.infer_task(["a", "b", "a"]) == "classification"
    assert _tabular.infer_task(["1", "0", "1.0"]) == "classification"
    assert _tabular.infer_task(["0.5", "1", "2"]) == "regression"
    assert _tabular.infer_task([str(i) for i in range(21)]) == "regression"
    assert _tabular.infer_task([str(i) for i in range(20)]) == "classification"


# ---------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    path = data["cancer"][0]
    assert main(["train", path, "--target", "diagnosis", "--epochs", "1", "--hidden", "4",
                 "-q", "-o", str(d / "cancer.npz")]) == 0
    fn.Sequential([fn.Dense(8, 2)]).save(d / "api.npz")
    blob = (d / "cancer.npz").read_bytes()
    (d / "truncated.npz").write_bytes(blob[: len(blob) // 3])
    return d


ERRORS = [
    # (name, argv with placeholders, a fragment of the message)
    ("missing target", ["train", "{cancer}", "--target", "nope"], "lacks the target column 'nope'"),
    ("non-numeric", ["train", "{bad_number}", "--target", "y"], "line 3: the feature column 'b' "
                                                               "holds 'oops', not a number"),
    ("empty file", ["train", "{empty}", "--target", "y"], "is empty"),
    ("header only", ["train", "{header_only}", "--target", "y"], "no data rows"),
    ("ragged row", ["train", "{ragged}", "--target", "y"], "line 3: 2 fields, but the header has 3"),
    ("missing value", ["train", "{missing}", "--target", "y"], "line 2: the feature column 'a' is "
                                                               "empty"),
    ("missing label", ["train", "{missing_label}", "--target", "y"], "the target column 'y' is "
                                                                    "empty"),
    ("one class", ["train", "{one_class}", "--target", "y"], "single class"),
    ("only target", ["train", "{only_target}", "--target", "y"], "no feature columns"),
    ("text regression target", ["train", "{text_target}", "--target", "y", "--task",
                                "regression"], "the target column 'y' holds 'cat'"),
    ("bad hidden", ["train", "{cancer}", "--target", "diagnosis", "--hidden", "8,x"], "--hidden"),
    ("bad dropout", ["train", "{cancer}", "--target", "diagnosis", "--dropout", "1.5"],
     "--dropout 1.5"),
    ("bad val split", ["train", "{cancer}", "--target", "diagnosis", "--val-split", "1.2"],
     "--val-split"),
    ("no output folder", ["train", "{cancer}", "--target", "diagnosis", "-o",
                          "{dir}/no/such/m.npz"], "does not exist"),
    ("missing data file", ["predict", "{model}", "{dir}/none.csv"], "No such file"),
    ("missing model file", ["predict", "{dir}/none.npz", "{cancer}"], "No such file"),
    ("columns do not match", ["predict", "{model}", "{diabetes}"], "lacks 8 feature columns"),
    ("model not from train", ["predict", "{api}", "{cancer}"], "not saved by `fastnn train`"),
    ("truncated model", ["evaluate", "{truncated}", "{cancer}"], "truncated or corrupted"),
    ("csv as model", ["evaluate", "{cancer}", "{cancer}"], "not an .npz archive"),
    ("unknown label", ["evaluate", "{model}", "{new_label}"], "label 'unsure' of column "
                                                              "'diagnosis' is not one of"),
    ("evaluate missing target", ["evaluate", "{model}", "{cancer}", "--target", "x"],
     "lacks the target column 'x'"),
]


@pytest.mark.parametrize("name,argv,fragment", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_one_line_and_status_2(data, models, tmp_path, capsys, name, argv,
                                            fragment):
    cancer, X, labels, names = data["cancer"]
    files = {
        "bad_number": "a,b,y\n1,2,0\n3,oops,1\n",
        "empty": "",
        "header_only": "a,b,y\n",
        "ragged": "a,b,y\n1,2,0\n3,1\n",
        "missing": "a,b,y\n,2,0\n3,1,1\n",
        "missing_label": "a,b,y\n1,2,0\n3,1,\n",
        "one_class": "a,b,y\n1,2,0\n3,1,0\n",
        "only_target": "y\n1\n0\n",
        "text_target": "a,b,y\n1,2,cat\n3,1,dog\n",
    }
    paths = {k: _write_csv(tmp_path / f"{k}.csv", [], []) for k in files}
    for k, text in files.items():
        (tmp_path / f"{k}.csv").write_text(text)
    with open(cancer, newline="") as f:
        rows = list(csv.reader(f))
    rows[5][-1] = "unsure"
    paths["new_label"] = _write_csv(tmp_path / "new_label.csv", rows[0], rows[1:])
    paths.update(cancer=cancer, diabetes=data["diabetes"][0], dir=str(tmp_path),
                 model=str(models / "cancer.npz"), api=str(models / "api.npz"),
                 truncated=str(models / "truncated.npz"))
    code, out, err = _run(capsys, *[a.format(**paths) for a in argv])
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn: error: "), err
    assert fragment in lines[0]
    assert not os.path.exists(tmp_path / "model.npz")


def test_usage_errors_exit_2_without_traceback(capsys):
    code, out, err = _run(capsys, "train", "x.csv")  # no --target
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("fastnn train: error: the following")
    code, out, err = _run(capsys, "train", "x.csv", "--target", "y", "--optimizer", "nope")
    assert code == 2 and "invalid choice" in err
    code, out, err = _run(capsys, "--help")
    assert code == 0 and "train" in out and "predict" in out and "evaluate" in out


# ---------------------------------------------------------------------- subprocess
def test_python_dash_m_fastnn_end_to_end(data, tmp_path):
    path = data["cancer"][0]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "fastnn", *map(str, argv)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    res = run("train", path, "--target", "diagnosis", "--epochs", 3, "--hidden", "8",
              "--backend", "vec")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "model.npz").exists()  # the default -o
    res = run("predict", "model.npz", path, "-o", "p.csv")
    assert res.returncode == 0, res.stderr
    header, rows = _read_csv(tmp_path / "p.csv")
    assert header[0] == "diagnosis" and len(rows) == 300
    assert {r[0] for r in rows} <= {"benign", "malignant"}
    res = run("evaluate", "model.npz", data["diabetes"][0])
    assert res.returncode == 2
    assert res.stderr.startswith("fastnn: error: ") and len(res.stderr.splitlines()) == 1
    assert "Traceback" not in res.stderr
