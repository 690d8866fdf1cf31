"""The command line: ``python -m fastnn demo``, ``python -m fastnn lesson``."""

import argparse
import sys
import time


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


def build_parser():
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
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
