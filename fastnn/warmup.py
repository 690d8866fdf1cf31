"""Compile (or load from the disk cache) the kernels training uses, ahead of time.

numba compiles a kernel the first time it is called with a new combination of
argument types and caches the machine code on disk (``FASTNN_CACHE``), so only the
first process pays. ``python -m fastnn warmup`` (or :func:`warmup`) pays it up front,
for example while building a container image or before timing anything.
"""

import time

import numpy as np


def warmup(dtypes=("float32", "float64"), optimizers=None, verbose=False):
    """Run one training step of a small network through every layer type, activation,
    loss and optimizer, in each dtype, so that their JIT forms are compiled and cached.
    Also ``fit``'s compiled epoch (``kernels/epoch.py``) of a two-layer Dense stack for
    each optimizer with softmax cross-entropy, and for the first optimizer with the
    other losses. (It is compiled for each number of layers and each loss,
    optimizer and dtype; other models compile theirs on their first ``fit``.)

    Parameters
    ----------
    dtypes : sequence of str
    optimizers : sequence of str, optional
        Names from ``fastnn.optim.OPTIMIZERS``; all by default.
    verbose : bool
        Print one line per dtype with the time it took.

    Returns
    -------
    float
        Seconds spent.
    """
    from . import layers as L
    from .model import Sequential
    from .optim import OPTIMIZERS

    names = sorted(OPTIMIZERS) if optimizers is None else list(optimizers)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4))
    y = {"softmax_cross_entropy": rng.integers(0, 3, 8), "binary_cross_entropy":
         rng.integers(0, 2, (8, 3)), "mse": rng.standard_normal((8, 3))}
    start = time.perf_counter()
    for dtype in dtypes:
        t0 = time.perf_counter()
        for k, act in enumerate(("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")):
            model = Sequential([L.Dense(4, 6, activation=act), L.BatchNorm(6), L.Dropout(0.1),
                                L.LayerNorm(6), L.Activation(act), L.Dense(6, 3)],
                               seed=0, dtype=dtype)
            for loss, target in y.items():
                model.fit(X, target, loss=loss, optimizer=names[k % len(names)], epochs=1,
                          batch_size=4)
                model.evaluate(X, target)
        for name in names:
            model = Sequential([L.Dense(4, 3)], seed=0, dtype=dtype)
            model.fit(X, y["softmax_cross_entropy"], loss="softmax_cross_entropy",
                      optimizer=name, epochs=1, batch_size=8)
            # two full batches of 3: the compiled epoch; the remaining 2: the Python loop
            for loss in y if name == names[0] else ["softmax_cross_entropy"]:
                model = Sequential([L.Dense(4, 5, activation="relu"), L.Dense(5, 3)], seed=0,
                                   dtype=dtype)
                model.fit(X, y[loss], loss=loss, optimizer=name, epochs=1, batch_size=3)
        if verbose:
            print(f"{dtype}: ready in {time.perf_counter() - t0:.1f} s")
    return time.perf_counter() - start
