"""Optimizer steps against the memory bound: issue 8's optimizer rows.

One group per row, ``<name>_perf[<size>]``, all measured in the same run:

``copy_bound``
    A copy over the same arrays as the optimizer, reading param, grad and every
    state array and writing param and the state (Adam: 4 reads, 3 writes, the
    "7-stream copy"): the time no update of those arrays can beat, as plain loops go.
``copy_prefetch``
    The same copy in the optimizers' own loop structure, blocks of 128 elements that
    prefetch their arrays 512 elements ahead (``kernels/optim.py``, from 1M elements):
    the memory bound with the optimizers' technique, which the plain copy is not.
``jit``
    ``opt.step(grads)`` of fastnn with its defaults: the non-finite check (a pass
    reading the gradient) and the fused update.
``jit_apply``
    The same with ``on_nonfinite='apply'``: the update alone, as ``torch.optim``
    does it (no check).
``torch``, ``torch_foreach``, ``torch_fused``
    ``torch.optim`` on the same flat float32 tensor and fastnn's state arrays (see
    ``_torch_step``): the default (single-tensor) path, ``foreach=True`` and
    ``fused=True`` where torch has them (skipped where not, and without torch).

10M float32 parameters in one flat buffer, with ``FASTNN_BENCH_THREADS`` threads
(torch pinned by ``conftest.py``, fastnn given them by ``_config.set_num_threads``)::

    FASTNN_BENCH_THREADS=2 python -m pytest benchmarks/test_bench_perf_optim.py \\
        --benchmark-enable --benchmark-columns=min,median

With timing off (the plain test run) the size is 10k, so that the smoke run takes
seconds.

``optimizers_in_turn[<size>]``: ``copy_bound``, ``jit_apply``, ``jit``, ``torch_fused``
and ``torch`` timed in turn, each once a round, over the same arrays, so that every
ratio compares times taken within milliseconds of each other: a shared machine's memory
bandwidth drifts over the seconds one group's tests take one after another (one run
timed the same copy at 1.7 to 4.4 ms from group to group, and torch fused Adam at 2.9
ms in its group against 4.7 ms in turn with fastnn's 4.3), and a group's ratios then
say when each test ran as much as what it costs. The copy here (``copy_keep``) writes
each array back as it read it, so that the optimizers' state stays theirs. The table
shows a round's time; the ratios, min over the rounds, are printed under the tables
(and saved in ``extra_info``).

``subnormal_state[...]``: the trap of units whose gradient stopped. Adam over the big
MLP's 235k float32 parameters with a zero gradient and ``exp_avg`` at the smallest
subnormals (where ``beta1 m`` rounds back to ``m``: such averages stay), one thread:
``jit`` (fastnn stores such state as zero, at its first step) against ``torch_fused``
(whose every step then computes with subnormals, through microcode assists).

``gemm_then_adam[...]``: the thread-pool fight of a training step. An njit kernel
computes ``np.dot`` of 128x784 and 784x256 (scipy's OpenBLAS), then Adam steps over
10M or 300k parameters, repeated; forms ``default`` (fastnn given no threads: serial
steps, BLAS on ``FASTNN_BENCH_THREADS``), ``policy`` (``_config.set_num_threads``:
steps on numba's threads, BLAS on one) and ``naive`` (both pools on
``FASTNN_BENCH_THREADS`` threads, what the policy forbids).
"""

import importlib.util

import numpy as np
import pytest
from _common import IN_TURN, THREADS, InTurn, Size, random, time_in_turn
from numba import prange

from fastnn import _config, optim
from fastnn._config import jit, jit_parallel
from fastnn.kernels.optim import block, blocks

LR = 1e-3
# name -> (fastnn kwargs, torch class, torch kwargs, state arrays): the same update
CASES = {
    "sgd": ({"momentum": 0.9}, "SGD", {"momentum": 0.9}, 1),
    "momentum": ({"beta": 0.9}, "SGD", {"momentum": 0.9, "dampening": 0.1}, 1),
    "adagrad": ({}, "Adagrad", {}, 1),
    "rmsprop": ({}, "RMSprop", {}, 1),
    "adadelta": ({}, "Adadelta", {}, 2),
    "adam": ({}, "Adam", {}, 2),
    "adamw": ({}, "AdamW", {}, 2),
    "adamax": ({}, "Adamax", {}, 2),
    "nadam": ({}, "NAdam", {}, 2),
}
TORCH_PATHS = {"torch": {}, "torch_foreach": {"foreach": True}, "torch_fused": {"fused": True}}
FORMS = ("copy_bound", "copy_prefetch", "jit", "jit_apply") + tuple(TORCH_PATHS)
LARGE = Size("10M float32", (10_000_000,))
SMOKE = Size("10k float32 (timing off)", (10_000,))


def copy3_loop(param, grad, s):
    """Read param, grad, s; write param, s: the streams of a one-state optimizer."""
    for i in prange(param.shape[0]):
        p = param[i]
        param[i] = grad[i] + s[i]
        s[i] = p


def copy4_loop(param, grad, s, t):
    """Read param, grad, s, t; write param, s, t: the 7 streams of Adam."""
    for i in prange(param.shape[0]):
        p = param[i]
        a = s[i]
        param[i] = grad[i] + t[i]
        s[i] = p
        t[i] = a


def copy3_prefetch_loop(param, grad, s):
    """copy3 in the optimizers' blocks, prefetching ahead as they do (kernels/optim.py)."""
    n = param.shape[0]
    for k in prange(blocks(n)):
        lo, width = block(k, param, grad, s)
        for j in range(width):
            i = lo + np.uint64(j)
            p = param[i]
            param[i] = grad[i] + s[i]
            s[i] = p


def copy4_prefetch_loop(param, grad, s, t):
    """copy4 in the optimizers' blocks, prefetching ahead as they do (kernels/optim.py)."""
    n = param.shape[0]
    for k in prange(blocks(n)):
        lo, width = block(k, param, grad, s, t)
        for j in range(width):
            i = lo + np.uint64(j)
            p = param[i]
            a = s[i]
            param[i] = grad[i] + t[i]
            s[i] = p
            t[i] = a


def copy3_keep_loop(param, grad, s):
    """copy3's streams, each array written back as it was read (grad's read kept by adding
    it times 0, which LLVM may not fold with fastmath off): over an optimizer's own arrays
    without changing them (but -0.0 to 0.0)."""
    for i in prange(param.shape[0]):
        p = param[i]
        a = s[i]
        z = grad[i] * grad.dtype.type(0.0)  # in grad's dtype: no conversions
        param[i] = p + z
        s[i] = a + z


def copy4_keep_loop(param, grad, s, t):
    """copy4's 7 streams, each array written back as it was read (see copy3_keep)."""
    for i in prange(param.shape[0]):
        # copy4's order: every load, then every store
        p = param[i]
        a = s[i]
        b = t[i]
        z = grad[i] * grad.dtype.type(0.0)  # in grad's dtype: no conversions
        param[i] = p + z
        s[i] = a + z
        t[i] = b + z


COPY = {1: (jit(copy3_loop), jit_parallel(copy3_loop)),
        2: (jit(copy4_loop), jit_parallel(copy4_loop))}
COPY_PREFETCH = {1: (jit(copy3_prefetch_loop), jit_parallel(copy3_prefetch_loop)),
                 2: (jit(copy4_prefetch_loop), jit_parallel(copy4_prefetch_loop))}
COPY_KEEP = {1: (jit(copy3_keep_loop), jit_parallel(copy3_keep_loop)),
             2: (jit(copy4_keep_loop), jit_parallel(copy4_keep_loop))}


@pytest.fixture(scope="module", autouse=True)
def _fastnn_threads():
    """fastnn's documented way to give its kernels the threads (BLAS pinned to one:
    nothing here calls BLAS); conftest.py's pins are put back afterwards."""
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    with threadpool_limits(limits=THREADS):
        _config.set_num_threads(THREADS)
        yield
    _config.set_num_threads(1)
    numba.set_num_threads(before)


@pytest.fixture
def size(request):
    timing = request.config.getoption("benchmark_enable") or not request.config.getoption(
        "benchmark_disable")
    return LARGE if timing else SMOKE


_GROUP = {}


def _group_arrays(name, size):
    """(param, grad, start, fastnn optimizer) shared by the forms of one group, so that
    the copy, fastnn and torch (through ``torch.from_numpy``) stream over the same
    pages: fresh 40 MB arrays may or may not get huge pages, which moved a copy's time
    by up to 40% between tests. One group's arrays at a time."""
    key = (name, str(size))
    if key not in _GROUP:
        _GROUP.clear()
        n = size.shape[0]
        param = random(n, seed=1)
        grad = random(n, seed=2, low=-0.1, high=0.1)
        opt = optim.OPTIMIZERS[name]([param], lr=LR, **CASES[name][0])
        _GROUP[key] = (param, grad, param.copy(), opt)
    return _GROUP[key]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(CASES))
def test_optimizer_vs_copy_bound(bench, request, form, name, size):
    n_state = CASES[name][3]
    equation = f"{name}_perf"
    param, grad, start, opt = _group_arrays(name, size)
    param[...] = start
    opt.zero_state()
    state = [a for a in opt.state.values() if a.size]
    assert len(state) == n_state
    if form in ("copy_bound", "copy_prefetch"):
        kernels = COPY if form == "copy_bound" else COPY_PREFETCH
        bench(form, equation, size, _copy_step(kernels, param, grad, state))
        return
    if form in TORCH_PATHS:
        step = _torch_step(request.getfixturevalue("torch"), name, form, param, grad, state)
        bench(form, equation, size, step)
    else:
        opt.on_nonfinite = "apply" if form == "jit_apply" else "skip"
        bench(form, equation, size, opt.step, [grad])
        assert opt.skipped_steps == 0
    _assert_moved(param, start, grad)


def _copy_step(kernels, param, grad, state):
    """The copy of ``kernels`` (``COPY``...) over these arrays, as a call."""
    serial, parallel = kernels[len(state)]
    # the optimizers' own rule for when to split over threads
    big = param.size >= _config.OPTIM_PARALLEL_MIN and _config.threads() > 1
    kernel = parallel if big else serial
    return lambda: kernel(param, grad, *state)


def _torch_step(torch, name, form, param, grad, state):
    """``step`` of the torch.optim path ``form`` of optimizer ``name`` over ``param`` and
    ``grad``, its state arrays ``state`` (fastnn's): torch streams over the same memory
    as fastnn (through ``torch.from_numpy``), where arrays of its own could sit on faster
    or slower pages (on a cloud guest, the same copy over two sets of fresh arrays of the
    same size has run 2.6 and 4.5 ms). Skips where torch has no such path."""
    _, torch_name, torch_kwargs, _ = CASES[name]
    p = torch.from_numpy(param).requires_grad_()
    p.grad = torch.from_numpy(grad)
    try:
        topt = getattr(torch.optim, torch_name)([p], lr=LR, **torch_kwargs,
                                                **TORCH_PATHS[form])
        topt.step()
    except (RuntimeError, TypeError, ValueError) as exc:
        pytest.skip(f"torch.optim.{torch_name} has no {form} path: {exc}")
    own = topt.state[p]
    keys = [key for key, value in own.items() if value.shape == p.shape]
    assert len(keys) == len(state), (keys, len(state))  # the same arrays, in the same order
    for key, array in zip(keys, state):
        own[key] = torch.from_numpy(array)
    return topt.step


def _assert_moved(param, start, grad):
    """Every step moved each weight against its (constant) gradient."""
    moved = param - start
    assert np.all(np.isfinite(param))
    assert np.mean(np.sign(moved) == -np.sign(grad)) > 0.99


#: Rounds of ``optimizers_in_turn``, each timing every form once.
IN_TURN_ROUNDS = 40
OPTIMIZER_TIMES = (("copy", "copy_bound"), ("apply", "jit_apply"), ("check", "jit"),
                   ("fused", "torch_fused"), ("torch", "torch"))
OPTIMIZER_RATIOS = (("jit_apply", "copy_bound"), ("jit", "copy_bound"),
                    ("torch_fused", "jit_apply"), ("torch", "jit_apply"))


@pytest.mark.parametrize("name", list(CASES))
def test_optimizers_in_turn(benchmark, request, name, size):
    param, grad, start, opt = _group_arrays(name, size)
    param[...] = start
    opt.zero_state()
    state = [a for a in opt.state.values() if a.size]

    def fastnn_step(on_nonfinite):
        def step():
            opt.on_nonfinite = on_nonfinite
            opt.step([grad])
        return step

    steps = {"copy_bound": _copy_step(COPY_KEEP, param, grad, state),
             "jit_apply": fastnn_step("apply"), "jit": fastnn_step("skip")}
    if importlib.util.find_spec("torch") is not None:
        torch = request.getfixturevalue("torch")
        for form in ("torch_fused", "torch"):
            try:
                steps[form] = _torch_step(torch, name, form, param, grad, state)
            except pytest.skip.Exception:
                pass  # no fused path for this optimizer
    benchmark.group = f"optimizers_in_turn[{size}]"
    best, rounds = time_in_turn(benchmark, steps, IN_TURN_ROUNDS)
    IN_TURN.append(InTurn(
        f"optimizer forms timed in turn, {size}",
        "apply and check against the copy of the same arrays, torch paths against apply "
        "(above 1: fastnn faster)",
        name, rounds, best, OPTIMIZER_TIMES, OPTIMIZER_RATIOS))
    assert opt.skipped_steps == 0
    _assert_moved(param, start, grad)

SIZES_ALTERNATION = {True: [Size("10M params", (10_000_000,)), Size("300k params", (300_000,))],
                     False: [Size("10k params (timing off)", (10_000,))]}


@jit
def _product(x, w, out):
    out[...] = np.dot(x, w)


@pytest.mark.parametrize("which", [0, 1], ids=["large", "small"])
@pytest.mark.parametrize("form", ["default", "policy", "naive"])
def test_gemm_then_adam(bench, request, form, which):
    import numba
    from threadpoolctl import threadpool_limits

    timing = request.config.getoption("benchmark_enable") or not request.config.getoption(
        "benchmark_disable")
    sizes = SIZES_ALTERNATION[bool(timing)]
    if which >= len(sizes):
        pytest.skip("one size with timing off")
    size = sizes[which]
    x, w = random((128, 784), seed=3), random((784, 256), seed=4)
    out = np.empty((128, 256), np.float32)
    param = random(size.shape, seed=1)
    grad = random(size.shape, seed=2, low=-0.1, high=0.1)
    opt = optim.Adam([param], lr=LR)

    def step():
        _product(x, w, out)
        opt.step([grad])

    before = _config.set_num_threads(1)
    try:
        with threadpool_limits(limits=THREADS, user_api="blas"):
            if form == "policy":
                _config.set_num_threads(THREADS)
            elif form == "naive":
                numba.set_num_threads(THREADS)
                _config._num_threads = THREADS  # threads without pinning BLAS
            bench(form, "gemm_then_adam", size, step)
    finally:
        _config.set_num_threads(before)
    np.testing.assert_allclose(out, x @ w, rtol=1e-4, atol=1e-3)
    assert np.all(np.isfinite(param)) and opt.step_count > 1


SUBNORMAL = {True: Size("235k float32", (235_146,)), False: Size("2k float32 (timing off)", (2048,))}


@pytest.mark.parametrize("form", ["jit", "torch_fused"])
def test_subnormal_state(bench, request, form):
    timing = request.config.getoption("benchmark_enable") or not request.config.getoption(
        "benchmark_disable")
    size = SUBNORMAL[bool(timing)]
    n = size.shape[0]
    param = random(n, seed=1)
    grad = np.zeros(n, np.float32)
    # the smallest subnormals, both signs: 0.9 m rounds back to m, so they would stay
    stuck = np.float32(2.0 ** -149) * np.where(np.arange(n) % 2 == 0, 1, -3).astype(np.float32)
    moment2 = np.full(n, 1e-3, np.float32)
    before = _config.set_num_threads(1)
    try:
        if form == "jit":
            opt = optim.Adam([param], lr=LR)
            opt.step([random(n, seed=2)])  # the state exists
            opt.state["exp_avg"][...] = stuck
            opt.state["exp_avg_sq"][...] = moment2
            bench(form, "subnormal_state", size, opt.step, [grad])
            state = opt.state["exp_avg"]
        else:
            torch = request.getfixturevalue("torch")
            p = torch.from_numpy(param).requires_grad_()
            p.grad = torch.from_numpy(random(n, seed=2))
            topt = torch.optim.Adam([p], lr=LR, fused=True)
            topt.step()
            st = topt.state[p]
            st["exp_avg"].copy_(torch.from_numpy(stuck))
            st["exp_avg_sq"].copy_(torch.from_numpy(moment2))
            p.grad = torch.from_numpy(grad)
            bench(form, "subnormal_state", size, topt.step)
            state = st["exp_avg"].numpy()
    finally:
        _config.set_num_threads(before)
    tiny = np.finfo(np.float32).tiny
    subnormal = np.count_nonzero((state != 0) & (np.abs(state) < tiny))
    if form == "jit":
        assert not np.any(state)  # zeros from the first step on
    else:
        assert subnormal == n  # PyTorch keeps them: what the jit form is measured against
