"""The command line: ``python -m fastnn demo``, ``python -m fastnn lesson``, and
``train``, ``predict`` and ``evaluate`` on CSV files."""

import argparse
import os
import sys
import time
import warnings

import numpy as np


def _demo(args):
    import numpy as np

    import fastnn as fn

    X, y = fn.datasets.load_digits()
    X = X / 16.0
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(X))
    n_test = len(X) // 5
    test, train = order[:n_test], order[n_test:]
    model = fn.Sequential([
        fn.Dense(64, 32, activation="relu"),
        fn.Dense(32, 10),
    ], seed=args.seed, backend=args.backend)
    opt = fn.optim.SGD(model.parameters(), lr=args.lr)
    print(f"fastnn demo: handwritten digits (1797 8x8 images, 10 classes), "
          f"{len(train)} train / {len(test)} test samples")
    print(model.summary())
    t0 = time.perf_counter()
    history = model.fit(X[train], y[train], loss="softmax_cross_entropy", optimizer=opt,
                        epochs=args.epochs, batch_size=args.batch_size,
                        validation_split=0.1, verbose=1)
    elapsed = time.perf_counter() - t0
    result = model.evaluate(X[test], y[test])
    print(f"trained {len(history.epoch)} epochs in {elapsed:.2f} s "
          f"(JIT compilation included on a first run)")
    print(f"test accuracy: {result['accuracy']:.4f}  test loss: {result['loss']:.4f}")
    return 0


def _lesson(args):
    from .lesson import main

    return main(args)


# ------------------------------------------------ train / predict / evaluate on a CSV
def _print_metrics(name, metrics, n):
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    print(f"{name:<11} {shown}  ({n} rows)")


def _regression_metrics(pred, y):
    err = pred - y
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err ** 2)) / total if total > 0 else float("nan")
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "r2": r2}


def _metrics(model, meta, X, y):
    """Loss and accuracy for a classifier; RMSE, MAE and R^2 in the target's units for
    a regressor (``y`` in those units)."""
    if meta["task"] == "classification":
        return model.evaluate(X, y)
    mean, std = meta["target_scale"]
    pred = model.predict(X) * std + mean
    return _regression_metrics(pred, y)


def _parse_hidden(text):
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = [0]
    if any(s < 1 for s in sizes):
        raise ValueError(f"--hidden {text!r}: expected widths separated by commas, e.g. 64,32")
    return sizes


def _build_network(n_in, n_out, args):
    from . import layers

    if not 0.0 <= args.dropout < 1.0:
        raise ValueError(f"--dropout {args.dropout}: expected a rate in [0, 1)")
    net, width = [], n_in
    for h in _parse_hidden(args.hidden):
        if args.batch_norm:  # normalize Z before the nonlinearity, as Ioffe & Szegedy do
            net += [layers.Dense(width, h), layers.BatchNorm(h),
                    layers.Activation(args.activation)]
        else:
            net.append(layers.Dense(width, h, activation=args.activation))
        if args.dropout:
            net.append(layers.Dropout(args.dropout))
        width = h
    net.append(layers.Dense(width, n_out))
    return net


def _train(args):
    import fastnn as fn

    from . import _tabular

    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):  # before training, not after
        raise ValueError(f"-o {args.output}: the folder {folder} does not exist")
    _parse_hidden(args.hidden)
    table = _tabular.read_csv(args.data)
    target = args.target
    table.index([target], "target column")
    features = [c for c in table.columns if c != target]
    if not features:
        raise ValueError(f"{args.data} has no feature columns besides the target {target!r}")
    X = table.numbers(features)
    task = args.task if args.task != "auto" else _tabular.infer_task(table.strings(target))
    if task == "classification":
        classes = _tabular.fit_classes(table, target)
        y = _tabular.encode(table, target, classes)
        loss, n_out = (("binary_cross_entropy", 1) if len(classes) == 2
                       else ("softmax_cross_entropy", len(classes)))
    else:
        classes = None
        y = table.numbers([target], "target")[:, 0]
        loss, n_out = "mse", 1

    n = len(table)
    if not 0.0 <= args.val_split < 1.0:
        raise ValueError(f"--val-split {args.val_split}: expected a fraction in [0, 1)")
    n_val = int(round(n * args.val_split))
    if args.val_split and (n_val < 1 or n_val >= n):
        raise ValueError(f"--val-split {args.val_split} of {n} rows leaves no validation or "
                         "no training row")
    order = np.random.default_rng(args.seed).permutation(n)
    val, tr = order[:n_val], order[n_val:]
    mean, std = _tabular.standardize_fit(X[tr])  # training rows only: no peeking
    Xs = (X - mean) / std
    meta = {"task": task, "target": target, "features": features, "classes": classes,
            "feature_mean": mean, "feature_std": std, "target_scale": [0.0, 1.0]}
    yt = y
    if task == "regression":  # MSE on a standardized target trains at any scale
        meta["target_scale"] = [float(y[tr].mean()), float(y[tr].std() or 1.0)]
        yt = (y - meta["target_scale"][0]) / meta["target_scale"][1]

    model = fn.Sequential(_build_network(len(features), n_out, args), seed=args.seed,
                          dtype=args.dtype, backend=args.backend)
    name = args.optimizer
    if args.lr is not None:
        optimizer = fn.optim.get_optimizer(name, model.parameters(), lr=args.lr,
                                           backend=args.backend)
    else:
        optimizer = name
    print(f"fastnn train: {args.data}, {n} rows, {len(features)} features, target "
          f"{target!r}: {task}" + (f" ({len(classes)} classes)" if classes else ""))
    model.fit(Xs[tr], yt[tr], loss=loss, optimizer=optimizer, epochs=args.epochs,
              batch_size=args.batch_size,
              validation_data=(Xs[val], yt[val]) if n_val else None,
              verbose=0 if args.quiet else 1)
    _print_metrics("train", _metrics(model, meta, Xs[tr], y[tr]), len(tr))
    if n_val:
        _print_metrics("validation", _metrics(model, meta, Xs[val], y[val]), n_val)
    model.save(args.output, metadata=meta)
    print(f"saved {args.output}")
    return 0


def _load_for_data(args):
    """The model saved by ``train`` and the CSV's features, scaled as in training."""
    import fastnn as fn

    from . import _tabular

    model = fn.load(args.model)
    meta = model.metadata
    if not {"task", "features", "feature_mean", "feature_std", "target"} <= set(meta):
        raise ValueError(f"{args.model} was not saved by `fastnn train`: it has no feature "
                         "scaler; use the Python API (fastnn.load) for it")
    table = _tabular.read_csv(args.data)
    try:
        table.index(meta["features"], "feature column")
    except ValueError as exc:
        raise ValueError(f"{exc} (the model {args.model} was trained on these)") from None
    X = (table.numbers(meta["features"]) - meta["feature_mean"]) / meta["feature_std"]
    return model, meta, table, X


def _predict(args):
    import csv

    model, meta, table, X = _load_for_data(args)
    name = meta["target"]
    header = [name]
    if meta["task"] == "classification":
        classes = meta["classes"]
        labels = [classes[i] for i in model.predict(X)]
        proba = model.predict_proba(X)
        if proba.ndim == 1:
            proba = np.stack([1.0 - proba, proba], axis=1)
        header += [f"p({c})" for c in classes]
        rows = [[label, *(f"{p:.6g}" for p in ps)] for label, ps in zip(labels, proba)]
    else:
        mean, std = meta["target_scale"]
        # str of a NumPy scalar: the shortest text that reads back as the same float32/64
        rows = [[str(v)] for v in model.predict(X) * std + mean]
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    return 0


def _evaluate(args):
    from . import _tabular

    model, meta, table, X = _load_for_data(args)
    target = args.target or meta["target"]
    table.index([target], "target column")
    if meta["task"] == "classification":
        y = _tabular.encode(table, target, meta["classes"])
    else:
        y = table.numbers([target], "target")[:, 0]
    _print_metrics(f"{args.data}:", _metrics(model, meta, X, y), len(table))
    return 0


def _add_data_commands(sub):
    """The ``train``, ``predict`` and ``evaluate`` subcommands."""
    from ._tabular import MAX_AUTO_CLASSES
    from .optim import OPTIMIZERS

    train = sub.add_parser("train", help="train a network on a CSV file and save it",
                           description="Train on DATA.csv (a header line, numeric features, "
                           "one target column). Features are standardized with the training "
                           "rows' means and standard deviations, which are saved with the "
                           "model.")
    train.add_argument("data", metavar="DATA.csv")
    train.add_argument("--target", required=True, metavar="COLUMN",
                       help="the column to predict; every other column is a feature")
    train.add_argument("--task", choices=("auto", "classification", "regression"),
                       default="auto", help="default: classification for text labels or at "
                       f"most {MAX_AUTO_CLASSES} distinct whole numbers, else regression")
    train.add_argument("--hidden", default="64,32", metavar="W1,W2,...",
                       help="hidden layer widths (default 64,32; '' for none)")
    train.add_argument("--activation", default="relu",
                       choices=("relu", "tanh", "sigmoid", "leaky_relu"))
    train.add_argument("--dropout", type=float, default=0.0, metavar="RATE",
                       help="dropout after each hidden layer (default 0: none)")
    train.add_argument("--batch-norm", action="store_true",
                       help="batch normalization before each hidden activation")
    train.add_argument("--epochs", type=int, default=50)
    train.add_argument("--batch-size", type=int, default=32)
    default_opt = "adam" if "adam" in OPTIMIZERS else "sgd"
    train.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=default_opt,
                       help=f"default {default_opt}")
    train.add_argument("--lr", type=float, default=None,
                       help="learning rate (default: the optimizer's; 0.01 for sgd)")
    train.add_argument("--val-split", type=float, default=0.2, metavar="FRACTION",
                       help="rows held out for validation, drawn at random (default 0.2)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dtype", choices=("float32", "float64"), default=None)
    train.add_argument("--backend", choices=("loop", "vec", "jit"), default="jit")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.add_argument("-o", "--output", default="model.npz", metavar="MODEL.npz",
                       help="where to save the model (default model.npz)")
    train.set_defaults(func=_train)

    predict = sub.add_parser("predict", help="predict the target of each row of a CSV file")
    predict.add_argument("model", metavar="MODEL.npz")
    predict.add_argument("data", metavar="DATA.csv")
    predict.add_argument("-o", "--output", metavar="PREDICTIONS.csv",
                         help="default: standard output")
    predict.set_defaults(func=_predict)

    evaluate = sub.add_parser("evaluate", help="a saved model's metrics on a labelled CSV file")
    evaluate.add_argument("model", metavar="MODEL.npz")
    evaluate.add_argument("data", metavar="DATA.csv")
    evaluate.add_argument("--target", metavar="COLUMN",
                          help="default: the column the model was trained on")
    evaluate.set_defaults(func=_evaluate)


def _warmup(args):
    from .warmup import warmup

    seconds = warmup(args.dtype, optimizers=args.optimizer, verbose=True)
    print(f"fastnn kernels ready ({seconds:.1f} s)")
    return 0


def build_parser():
    from . import optim

    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small network on the bundled digits data")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--batch-size", type=int, default=32)
    demo.add_argument("--lr", type=float, default=0.1)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--backend", choices=("loop", "vec", "jit"), default="jit")
    demo.set_defaults(func=_demo)

    lesson = sub.add_parser("lesson", help="replay the lecture's lesson: the same equations as "
                            "a Python loop, vectorized NumPy and numba JIT, timed side by side")
    lesson.add_argument("--quick", action="store_true",
                        help="small sizes, one repeat: a few seconds")
    lesson.add_argument("--dot-n", type=int, help="vector length of the dot product "
                        "(default 1,000,000; quick 100,000)")
    lesson.add_argument("--samples", type=int, help="m, samples (default 1000; quick 200)")
    lesson.add_argument("--features", type=int, help="n_x, features (default 20; quick 10)")
    lesson.add_argument("--hidden", type=int, help="hidden units of the 2-layer network "
                        "(default 64; quick 16)")
    lesson.add_argument("--iterations", type=int, help="gradient descent steps of the logistic "
                        "regression (default 50; quick 10)")
    lesson.add_argument("--repeats", type=int, help="time each form this many times, keep the "
                        "best (default 3; quick 1)")
    lesson.add_argument("--steps", type=int, default=20, help="steps of the 1-D gradient descent")
    lesson.add_argument("--threads", type=int, default=1,
                        help="BLAS threads while timing (default 1; needs threadpoolctl)")
    lesson.add_argument("--seed", type=int, default=0)
    lesson.add_argument("--plot", metavar="FILE.png",
                        help="also draw the times and the 1-D paths (needs matplotlib)")
    lesson.set_defaults(func=_lesson)
    warm = sub.add_parser("warmup", help="compile (or load from the disk cache) the training "
                          "kernels now, so that a later first fit starts at full speed")
    warm.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                      choices=("float32", "float64"))
    warm.add_argument("--optimizer", nargs="+", default=None, choices=sorted(optim.OPTIMIZERS),
                      help="the optimizers to compile for (default: all)")
    warm.set_defaults(func=_warmup)
    _add_data_commands(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fastnn: warning: {message}", file=sys.stderr)


def main(argv=None):
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit
    status: 0, or 2 after a one-line ``fastnn: error: ...`` on stderr."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has printed
        return exc.code if isinstance(exc.code, int) else 0
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except BrokenPipeError:  # `fastnn predict ... | head`: the reader has gone
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit flush is silent
            return 1
        except (ValueError, OSError) as exc:
            # Bad input is the user's to fix: one line, no traceback. FASTNN_DEBUG=1
            # shows the traceback, for when the error is fastnn's own.
            if os.environ.get("FASTNN_DEBUG"):
                raise
            message = " ".join(str(exc).split())
            print(f"fastnn: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("fastnn: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
