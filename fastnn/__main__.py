"""The command line: ``python -m fastnn demo``."""

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
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
