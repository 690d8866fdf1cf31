"""Helpers imported by the benchmark files (fixtures live in ``conftest.py``)."""

import os
from dataclasses import dataclass

import numpy as np

#: Threads for every library during the benchmarks (BLAS, numba, torch).
THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", "1"))

#: ``(row, rounds, {form: min seconds})`` of the forms timed in turn
#: (test_bench_perf_optim.py's ``optimizers_in_turn``), printed under the tables.
IN_TURN = []

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


def give_threads(request):
    """fastnn given THREADS threads the documented way (``fn.set_num_threads``: BLAS on
    one thread; fit splits batches of Dense stacks, large kernels run on numba's
    threads) for one benchmark, undone after. Skips below two threads or without
    threadpoolctl."""
    import numba
    import pytest

    import fastnn as fn

    if THREADS < 2:
        pytest.skip("fastnn given threads needs FASTNN_BENCH_THREADS >= 2")
    pytest.importorskip("threadpoolctl")
    numba_threads = numba.get_num_threads()
    previous = fn.set_num_threads(THREADS)

    def undo():
        fn.set_num_threads(previous)
        numba.set_num_threads(numba_threads)  # set_num_threads(1) set numba's to one too

    request.addfinalizer(undo)
