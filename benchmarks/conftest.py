"""Shared set-up of the benchmark suite: pinned threads, warm-up, groups, slow-loop sizes.

Every benchmark body goes through the ``bench`` fixture::

    bench(form, "dense_forward", size, fn, *args)

which puts the run in the group ``dense_forward[<size label>]`` (so the loop, vec,
jit and peer forms of one equation at one size sit side by side in one table),
calls ``fn`` once outside the timing for every compiled or library form (numba
compiles on first call; torch and BLAS allocate their work buffers), and skips the
plain-Python loop where ``size.loop`` is False, that is where one call would take
more than a few seconds. The skipped groups are listed under the tables.

Threads. Two cores, and numpy and scipy each load their own OpenBLAS: with their
default thread counts a small matrix product oversubscribes the cores several times
over and times become noise. Every BLAS (threadpoolctl), numba's thread pool and
torch's intra-op pool are pinned to ``FASTNN_BENCH_THREADS`` threads (default 1, so
every form is measured single-threaded: a like-for-like comparison of the kernels).

Under the tables: the forms timed in turn (``optimizers_in_turn`` in
test_bench_perf_optim.py, ``epochs_in_turn`` in test_bench_perf_epoch.py,
``dropout_norm_in_turn`` in test_bench_perf_dropout_norm.py; see
``_common.time_in_turn``) as ratios, and the groups where the Python loop is not run.
"""

import pytest
from _common import IN_TURN, THREADS

# Rounds of the plain-Python loop: one call takes up to a few seconds, so the
# default calibration (at least 5 rounds, 1 s) would make the suite crawl.
_LOOP_ROUNDS = 3

_skipped_loops = []


@pytest.fixture(scope="session", autouse=True)
def _pin_threads():
    """Pin BLAS (numpy's and scipy's OpenBLAS, any MKL) and numba to ``THREADS``."""
    import numba
    import scipy.linalg  # noqa: F401  load scipy's OpenBLAS now, so the limit covers it
    from threadpoolctl import threadpool_limits

    from fastnn._config import _unnest_openmp

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    # numba's OpenMP layer turned nesting on in the libgomp torch will share; without
    # this, torch's small epoch ran 7-10x slower here (as fn.set_num_threads does)
    _unnest_openmp()
    with threadpool_limits(limits=THREADS):
        yield


@pytest.fixture(scope="session")
def torch():
    """PyTorch (CPU) pinned to ``THREADS`` threads; skips the benchmark if not installed."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    return torch


class _Bench:
    """``bench(form, equation, size, fn, *args)``: time ``fn(*args)`` in the group
    ``equation[size]`` after one untimed warm-up call; returns ``fn``'s last result.

    ``bench.check(form, equation, size)`` skips early, before a test prepares data
    or calls anything, where the Python loop is not run at ``size``.
    """

    def __init__(self, benchmark):
        self.benchmark = benchmark

    def check(self, form, equation, size):
        group = f"{equation}[{size}]"
        if form == "loop" and not size.loop:
            _skipped_loops.append(group)
            # one reason for all, so that -ra folds them into one line; the groups are
            # listed under the tables
            pytest.skip("the Python loop is not run at the larger sizes (one call would "
                        "take more than a few seconds)")
        return group

    def __call__(self, form, equation, size, fn, *args):
        group = self.check(form, equation, size)
        benchmark = self.benchmark
        benchmark.group = group
        benchmark.extra_info["form"] = form
        benchmark.extra_info["size"] = str(size)
        if form == "loop":
            return benchmark.pedantic(fn, args=args, rounds=_LOOP_ROUNDS, iterations=1)
        fn(*args)  # warm-up: JIT compilation, first-call allocations
        return benchmark(fn, *args)


@pytest.fixture
def bench(benchmark):
    return _Bench(benchmark)


@pytest.hookimpl(trylast=True)  # under pytest-benchmark's tables
def pytest_terminal_summary(terminalreporter, config):
    timing = config.getoption("benchmark_enable") or not config.getoption("benchmark_disable")
    if IN_TURN and timing:
        _write_in_turn(terminalreporter)
    if not _skipped_loops:
        return
    groups = sorted(set(_skipped_loops))
    if config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"):
        terminalreporter.write_line(f"fastnn benchmarks: Python loop not run in {len(groups)} "
                                    "groups (larger sizes; listed when timing is on)")
        return
    terminalreporter.write_sep("-", "fastnn benchmarks: Python loop not run")
    terminalreporter.write_line(
        "The plain-Python loop form runs only at sizes where one call takes seconds; it is "
        "absent from these groups on purpose (compare it at the smaller size):")
    for group in groups:
        terminalreporter.write_line(f"  {group}")


def _write_in_turn(terminalreporter):
    """The forms timed in turn, a table each: min over the rounds, and the ratios the
    targets name."""
    tables = {}
    for entry in IN_TURN:
        tables.setdefault(entry.table, []).append(entry)
    for title, entries in tables.items():
        first = entries[0]
        labels = {form: label for label, form in first.times}
        terminalreporter.write_sep("-", f"fastnn benchmarks: {title}")
        terminalreporter.write_line(f"min of each form over its calls, in ms; {first.note}")
        width = max(len(e.row) for e in entries)
        heads = [f"{label:>11s}" for label, _ in first.times] + [
            f"{labels[a] + '/' + labels[b]:>14s}" for a, b in first.ratios]
        terminalreporter.write_line(f"{'':{width}s} {'rounds':>6s} " + " ".join(heads))
        for e in entries:
            cells = [f"{e.best[form] * 1e3:11.3f}" if form in e.best else f"{'-':>11s}"
                     for _, form in e.times]
            cells += [f"{e.best[a] / e.best[b]:13.2f}x" if a in e.best and b in e.best
                      else f"{'-':>14s}" for a, b in e.ratios]
            terminalreporter.write_line(f"{e.row:{width}s} {e.rounds:6d} " + " ".join(cells))
