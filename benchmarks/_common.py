"""Helpers imported by the benchmark files (fixtures live in ``conftest.py``)."""

import os
from dataclasses import dataclass

import numpy as np

#: Threads for every library during the benchmarks (BLAS, numba, torch).
THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", "1"))

#: The three forms of fastnn's equations.
FORMS = ("loop", "vec", "jit")


@dataclass(frozen=True)
class Size:
    """A named problem size; ``loop`` says whether the plain-Python loop runs at it."""

    label: str
    shape: tuple
    loop: bool = True

    def __str__(self):
        return self.label


def ids(sizes):
    return [s.label for s in sizes]


def random(shape, dtype=np.float32, seed=0, low=-1.0, high=1.0):
    """Uniform data of ``shape`` and ``dtype``, the same on every run."""
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)
