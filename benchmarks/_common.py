"""Helpers imported by the benchmark files (fixtures live in ``conftest.py``)."""

import contextlib
import importlib.util
import os
import time
from dataclasses import dataclass

import numpy as np

#: Threads for every library during the benchmarks (BLAS, numba, torch).
THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", "1"))

#: The forms timed in turn (:func:`time_in_turn`), printed under the tables: one
#: :class:`InTurn` a row, the rows of one ``table`` under one header.
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


@dataclass(frozen=True)
class InTurn:
    """One row of a table of forms timed in turn: the min of each form over the rounds
    (``best``, seconds), shown in ms for ``times``, ``(label, form)`` pairs, and as
    ``ratios``, ``(form, base)`` pairs, each ``best[form] / best[base]``."""

    table: str
    note: str
    row: str
    rounds: int
    best: dict
    times: tuple
    ratios: tuple


def forms_here(forms, threaded=(), peers=None):
    """``forms`` less those this run cannot time: the ``threaded`` ones below two threads
    or without threadpoolctl (the smoke run's one thread), and those whose library is not
    installed (``peers``: form -> module name)."""
    peers = peers or {}
    no_threads = THREADS < 2 or importlib.util.find_spec("threadpoolctl") is None
    return tuple(f for f in forms if not (no_threads and f in threaded)
                 and (f not in peers or importlib.util.find_spec(peers[f]) is not None))


def time_in_turn(benchmark, steps, rounds, threaded=(), repeat=1):
    """Time every form of ``steps`` (form -> callable) in turn, ``repeat`` calls in a
    row a round (each call timed), for ``rounds`` rounds after one untimed warm-up
    round; return each form's min seconds over its calls and the rounds timed (one when
    timing is off).

    Forms timed one after another in their own groups catch a shared machine in
    different moods (its memory bandwidth, its other tenants move over seconds); in
    turn, every ratio compares times taken within a round of each other. ``repeat``
    lets a short call run warm, as in a loop of its own, after the others have filled
    the caches and put threads to sleep. The forms in ``threaded`` run with fastnn
    given the threads (:func:`threads_given`, entered and left outside the timing).
    The table shows a round's time."""
    times = {form: [] for form in steps}

    def one_round():
        for form, step in steps.items():
            with threads_given() if form in threaded else contextlib.nullcontext():
                for _ in range(repeat):
                    start_ns = time.perf_counter_ns()
                    step()
                    times[form].append(time.perf_counter_ns() - start_ns)

    one_round()  # warm-up: compilation, first-call allocations, torch's state
    for t in times.values():
        t.clear()
    benchmark.extra_info["form"] = "in_turn"
    benchmark.pedantic(one_round, rounds=rounds, iterations=1)
    best = {form: min(t) * 1e-9 for form, t in times.items()}
    benchmark.extra_info["min_seconds"] = best
    return best, len(times[next(iter(times))]) // repeat


@contextlib.contextmanager
def threads_given():
    """fastnn given THREADS threads the documented way (``fn.set_num_threads``: BLAS on
    one thread), as before on exit."""
    import numba

    import fastnn as fn

    numba_threads = numba.get_num_threads()
    previous = fn.set_num_threads(THREADS)
    try:
        yield
    finally:
        fn.set_num_threads(previous)
        numba.set_num_threads(numba_threads)  # set_num_threads(1) set numba's to one too


def needs_threads():
    """Skip unless fastnn can be given threads: FASTNN_BENCH_THREADS >= 2, threadpoolctl."""
    import pytest

    if THREADS < 2:
        pytest.skip("fastnn given threads needs FASTNN_BENCH_THREADS >= 2")
    pytest.importorskip("threadpoolctl")


def give_threads(request):
    """fastnn given THREADS threads the documented way (``fn.set_num_threads``: BLAS on
    one thread; fit splits batches of Dense stacks, large kernels run on numba's
    threads) for one benchmark, undone after. Skips below two threads or without
    threadpoolctl."""
    needs_threads()
    given = threads_given()
    given.__enter__()
    request.addfinalizer(lambda: given.__exit__(None, None, None))
