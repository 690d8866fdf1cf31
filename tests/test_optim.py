"""Optimizers: PyTorch's trajectories (golden fixture), the three kernel forms, naive
twins, the lecture's worked examples, clipping, L1/L2, non-finite gradients, state,
bad hyperparameters, and training a network on digits."""

import json
import math
import os
import sys
import warnings

import numpy as np
import pytest

import fastnn as fn
from fastnn.kernels.optim import (
    F32_EXPONENT,
    MAX_EXPONENT_KERNELS,
    OPTIMIZER_KERNELS,
    PENALTY_KERNELS,
    SUMSQ_KERNELS,
)
from fastnn.optim import OPTIMIZERS, WeightPenalty, clip_grad_norm_, clip_grad_value_

import reference

FORMS = ["loop", "vec", "jit"]
GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "optim_golden.npz"))
META = json.loads(str(GOLDEN["meta"]))
CASES = {c["case"]: c for c in META["cases"]}
SAVED = [int(s) for s in GOLDEN["saved_steps"]]
P0 = GOLDEN["p0"]
GRADS = GOLDEN["grads"]
# optimizer class name -> naive twin in tests/reference.py
TWINS = {"SGD": reference.sgd, "Momentum": reference.momentum, "Adagrad": reference.adagrad,
         "RMSprop": reference.rmsprop, "Adadelta": reference.adadelta, "Adam": reference.adam,
         "AdamW": reference.adamw, "Adamax": reference.adamax, "NAdam": reference.nadam}


def _trajectory(optimizer, kwargs, form, p0=P0, grads=GRADS, dtype=np.float64):
    """Run ``optimizer`` over the gradient sequence; parameters after each step."""
    p = np.array(p0, dtype=dtype)
    opt = getattr(fn.optim, optimizer)([p], backend=form, **kwargs)
    out = []
    for g in grads:
        assert opt.step([np.asarray(g, dtype=dtype)])
        out.append(p.copy())
    return np.array(out), opt


# ------------------------------------------------------------ PyTorch's trajectories
def test_fixture_is_from_the_stated_torch():
    assert META["torch"].startswith("2.13")
    assert len(CASES) >= 40 and GRADS.shape == (100, 7)
    assert {c["optimizer"] for c in CASES.values()} == {
        "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam"}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_pytorch_trajectory(case, form):
    meta = CASES[case]
    comp, opt = _trajectory(meta["optimizer"], meta["kwargs"], form)
    ref = GOLDEN[f"{case}/traj"]
    comp = comp[[s - 1 for s in SAVED]]
    # atol: a floor for entries that pass near zero, 1000x below the rtol on O(1) values
    np.testing.assert_allclose(comp, ref, rtol=1e-10, atol=1e-13)
    # the displacement from the start, so that small lr and eps effects are held too
    np.testing.assert_allclose(comp - P0, ref - P0, rtol=1e-9, atol=1e-14)
    for key in meta["state"]:
        np.testing.assert_allclose(opt.state[key], GOLDEN[f"{case}/state/{key}"],
                                   rtol=1e-10, atol=1e-14)
    for key, value in meta["scalars"].items():
        assert getattr(opt, key) == pytest.approx(value, rel=1e-12)
    assert opt.step_count == 100


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_naive_twin(case):
    meta = CASES[case]
    comp, _ = _trajectory(meta["optimizer"], meta["kwargs"], "jit")
    ref = np.array(TWINS[meta["optimizer"]](P0, GRADS, **meta["kwargs"]))
    np.testing.assert_allclose(comp, ref, rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------- the three forms agree
SETTINGS = [(c["optimizer"], c["kwargs"]) for c in CASES.values()] + [
    ("Momentum", {"lr": 0.1}),
    ("Momentum", {"lr": 0.1, "beta": 0.5, "bias_correction": True, "weight_decay": 0.1}),
    ("Momentum", {"lr": 0.1, "maximize": True, "clip_norm": 1.0}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer,kwargs", SETTINGS,
                         ids=[f"{o}-{i}" for i, (o, _) in enumerate(SETTINGS)])
def test_three_forms_agree(optimizer, kwargs, dtype):
    grads = GRADS[:20]
    loop, _ = _trajectory(optimizer, kwargs, "loop", grads=grads, dtype=dtype)
    jit, _ = _trajectory(optimizer, kwargs, "jit", grads=grads, dtype=dtype)
    vec, _ = _trajectory(optimizer, kwargs, "vec", grads=grads, dtype=dtype)
    assert loop.dtype == jit.dtype == vec.dtype == dtype
    np.testing.assert_array_equal(jit, loop)
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(vec, loop, **tol)


@pytest.mark.parametrize("optimizer,kwargs", SETTINGS,
                         ids=[f"{o}-{i}" for i, (o, _) in enumerate(SETTINGS)])
def test_parallel_kernels_give_the_loops_bits(optimizer, kwargs, monkeypatch):
    """Above _config.OPTIM_PARALLEL_MIN the step and its gradient check run split over
    numba's threads; float32, several blocks of the sum of squares, the loop's bits."""
    import numba

    from fastnn import _config
    monkeypatch.setattr(_config, "OPTIM_PARALLEL_MIN", 1)
    monkeypatch.setattr(_config, "threads", lambda: 2)
    n = 70_000  # two blocks of the sum of squares
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(2)]
    comp, opt = _trajectory(optimizer, kwargs, "jit", p0=p0, grads=grads, dtype=np.float32)
    assert numba.config.NUMBA_NUM_THREADS < 2 or opt._pick(
        opt._kernel, opt._kernel_parallel, n) is opt._kernel_parallel
    ref, _ = _trajectory(optimizer, kwargs, "loop", p0=p0, grads=grads, dtype=np.float32)
    np.testing.assert_array_equal(comp, ref)


ELEMENTWISE = [(o, k) for o, k in SETTINGS if "clip_norm" not in k]  # no global norm


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("optimizer,kwargs", SETTINGS,
                         ids=[f"{o}-{i}" for i, (o, _) in enumerate(SETTINGS)])
def test_out_takes_the_update_and_param_keeps_the_old(optimizer, kwargs, form):
    """A kernel given ``out`` writes there the bits it writes into ``param`` in place,
    updates the state alike and leaves ``param`` as it was (fit's compiled epoch
    alternates two parameter buffers this way, checked against the Python loop for
    every optimizer in both dtypes in tests/test_epoch.py)."""
    dtype = np.float32
    rng = np.random.default_rng(7)
    p = rng.standard_normal(300).astype(dtype)
    g = rng.standard_normal(300).astype(dtype)
    opt = getattr(fn.optim, optimizer)([p], backend=form, **kwargs)
    opt.step([g])  # a state that is not all zeros
    _, _, state = opt._chunks([g])[0]
    scalars = [dtype(x) if isinstance(x, float) else x
               for x in (*opt._sign_and_clip(), *opt._scalars(opt.current_lr()))]
    kernel = OPTIMIZER_KERNELS[opt.kernel][form]
    in_place, in_place_state = p.copy(), [a.copy() for a in state]
    kernel(in_place, g, *in_place_state, *scalars)
    before, out, out_state = p.copy(), np.full_like(p, np.nan), [a.copy() for a in state]
    kernel(p, g, *out_state, *scalars, out=out)
    assert not np.array_equal(in_place, before)
    np.testing.assert_array_equal(out, in_place)
    np.testing.assert_array_equal(p, before)
    for got, want in zip(out_state, in_place_state):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,kwargs", SETTINGS,
                         ids=[f"{o}-{i}" for i, (o, _) in enumerate(SETTINGS)])
def test_no_state_is_stored_subnormal_and_the_forms_agree(optimizer, kwargs, dtype):
    """Every state value that would be subnormal is stored as a zero of its sign (see
    kernels/optim.py), in the three forms alike: a step with a zero gradient from a
    state at the smallest normal number, which every decaying average takes below it."""
    tiny = np.finfo(dtype).tiny
    got = {}
    for form in FORMS:
        p = np.linspace(-1.0, 1.0, 40).astype(dtype)
        opt = getattr(fn.optim, optimizer)([p], backend=form, **kwargs)
        opt.step([np.linspace(-0.5, 0.5, 40).astype(dtype)])
        for a in opt.state.values():
            a[...] = tiny
        opt.step([np.zeros(40, dtype)])
        for key, a in opt.state.items():
            assert not np.any((a != 0) & (np.abs(a) < tiny)), (form, key)
        got[form] = [p, *opt.state.values()]
    for form in FORMS[1:]:
        for a, b in zip(got[form], got[FORMS[0]]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("optimizer,kwargs,flushed", [
    ("Adam", {"lr": 0.1}, ("exp_avg", "exp_avg_sq")),
    ("NAdam", {"lr": 0.1}, ("exp_avg", "exp_avg_sq")),
    ("Adamax", {"lr": 0.1}, ("exp_avg",)),
    ("SGD", {"lr": 0.1, "momentum": 0.9}, ("momentum_buffer",)),
    ("Momentum", {"lr": 0.1}, ("velocity",)),
    ("RMSprop", {"lr": 0.1, "centered": True, "momentum": 0.9},
     ("square_avg", "grad_avg", "momentum_buffer")),
    ("Adadelta", {"lr": 0.1}, ("square_avg", "acc_delta")),
])
def test_decaying_state_goes_to_signed_zero_not_subnormal(optimizer, kwargs, flushed, form):
    """A unit whose gradient stopped: its averages decay by a factor below 1 a step, and
    from the smallest normal number one step takes them below it; they become zeros of
    their sign, and the parameters do not move (IEEE arithmetic would leave subnormals,
    each costing a microcode assist per vector operation: an Adam step over 235k of them
    took 40x as long, and an epoch of a network with dead units twice as long, in
    PyTorch too)."""
    dtype = np.float32
    tiny = np.finfo(dtype).tiny
    sign = np.where(np.arange(8) % 2 == 0, 1, -1).astype(dtype)
    p = np.linspace(1.0, 2.0, 8).astype(dtype)
    opt = getattr(fn.optim, optimizer)([p], backend=form, **kwargs)
    opt.step([np.full(8, 0.5, dtype)])
    signed = ("exp_avg", "momentum_buffer", "velocity", "grad_avg")  # may be negative
    for key, a in opt.state.items():
        a[...] = tiny * sign if key in signed else tiny
    before = p.copy()
    opt.step([np.zeros(8, dtype)])
    for key in flushed:
        a = opt.state[key]
        assert np.all(a == 0), (key, a)
        if key in signed:
            np.testing.assert_array_equal(np.signbit(a), sign < 0)
    np.testing.assert_array_equal(p, before)  # a zero state moves nothing


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("optimizer,kwargs", ELEMENTWISE,
                         ids=[f"{o}-{i}" for i, (o, _) in enumerate(ELEMENTWISE)])
def test_prefetching_blocks_give_the_same_bits(optimizer, kwargs, threads, monkeypatch):
    """From kernels.optim.PREFETCH_MIN elements the update loops run in blocks of 128
    that prefetch their arrays ahead (where _config.PREFETCH is on: not on AMD Zen, where
    this runs the next case); below it in 16 larger blocks. Every element's update is its
    own, so a buffer stepped whole equals its quarters stepped apart (each below
    PREFETCH_MIN), serial or split over threads."""
    from fastnn import _config
    from fastnn.kernels.optim import PREFETCH_MIN

    monkeypatch.setattr(_config, "threads", lambda: threads)
    n = PREFETCH_MIN + 1001
    rng = np.random.default_rng(6)
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(2)]
    whole, _ = _trajectory(optimizer, kwargs, "jit", p0=p0, grads=grads, dtype=np.float32)
    cuts = np.linspace(0, n, 5).astype(int)
    parts = [_trajectory(optimizer, kwargs, "jit", p0=p0[a:b], grads=[g[a:b] for g in grads],
                         dtype=np.float32)[0] for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(whole, np.concatenate(parts, axis=1))


@pytest.mark.parametrize("env", ["1", "0", "", "maybe"])
def test_prefetch_is_the_cpus_unless_set(env):
    """FASTNN_PREFETCH, read at import, decides whether the update loops prefetch; unset
    or empty, the CPU does (off on AMD Zen, LLVM's ``znver*``); anything else is an error
    that names what it takes."""
    import subprocess

    code = "from fastnn import _config; print(_config.PREFETCH, _config._host_cpu())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "FASTNN_PREFETCH": env})
    if env == "maybe":
        assert run.returncode != 0
        assert "FASTNN_PREFETCH='maybe': expected 0/1, true/false" in run.stderr
        return
    prefetch, cpu = run.stdout.split()
    expected = {"1": True, "0": False}.get(env, not cpu.startswith("znver"))
    assert prefetch == str(expected)


def test_set_num_threads_gives_numba_the_threads_and_pins_blas():
    """One pool multi-threaded at a time: fastnn's threads come with BLAS on one."""
    import numba

    from fastnn import _config
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not os.environ.get("FASTNN_NUM_THREADS"):
        assert _config.threads() == 1  # nothing given: the optimizers' steps are serial
    before = numba.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=2):  # puts BLAS back afterwards
        previous = _config.set_num_threads(2)
        try:
            assert _config.threads() == min(2, numba.config.NUMBA_NUM_THREADS)
            blas = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                    if i["user_api"] == "blas"]
            assert blas and max(blas) == 1
            assert _config.set_num_threads(1) == 2 and _config.threads() == 1
            blas = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                    if i["user_api"] == "blas"]
            assert min(blas) == 2  # BLAS has its threads back
        finally:
            _config.set_num_threads(previous)
            numba.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        _config.set_num_threads(0)


def test_set_num_threads_without_threadpoolctl_warns(monkeypatch):
    """Without threadpoolctl BLAS cannot be pinned: the threads still go to numba, and a
    warning says that BLAS keeps its own and how to install what pins it."""
    import numba

    from fastnn import _config
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # its import fails
    monkeypatch.setattr(_config, "_blas_pin", None)
    before, previous = numba.get_num_threads(), _config.threads()
    try:
        with pytest.warns(RuntimeWarning, match=r"BLAS keeps its own threads.*fastnn\[threads\]"):
            assert _config.set_num_threads(2) == previous
        assert _config.threads() == 2 and not _config.blas_pinned()
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    finally:
        _config.set_num_threads(previous)
        numba.set_num_threads(before)
    assert _config.threads() == previous


def test_set_num_threads_turns_openmp_nesting_back_off(monkeypatch):
    """numba's OpenMP layer starts its pool with nesting on (max active levels 255) in
    the runtime that torch, imported later, shares and then nests in: set_num_threads
    turns it back to one level, unless the user asked for nesting."""
    import numba

    from fastnn import _config
    before, previous = numba.get_num_threads(), _config.set_num_threads(1)  # starts the pool
    if numba.threading_layer() != "omp":
        pytest.skip(f"numba runs its {numba.threading_layer()!r} layer, not OpenMP")
    runtime = _config._openmp_runtime()
    if runtime is None:
        pytest.skip(f"none of {_config._OPENMP_NAMES} is loaded under its name here")
    try:
        runtime.omp_set_max_active_levels(255)  # as numba's launch left it
        monkeypatch.delenv("OMP_MAX_ACTIVE_LEVELS", raising=False)
        monkeypatch.delenv("OMP_NESTED", raising=False)
        _config.set_num_threads(2)
        assert runtime.omp_get_max_active_levels() == 1
        runtime.omp_set_max_active_levels(255)
        monkeypatch.setenv("OMP_MAX_ACTIVE_LEVELS", "255")  # the user's choice stands
        assert _config._unnest_openmp() is None
        assert runtime.omp_get_max_active_levels() == 255
    finally:
        runtime.omp_set_max_active_levels(1)
        _config.set_num_threads(previous)
        numba.set_num_threads(before)


def test_momentum_twin():
    """The lecture's momentum is not in torch.optim: its oracle is the naive twin."""
    for kwargs in ({"lr": 0.1}, {"lr": 0.1, "beta": 0.5, "bias_correction": True,
                                 "weight_decay": 0.1, "clip_value": 0.5}):
        comp, _ = _trajectory("Momentum", kwargs, "jit")
        ref = np.array(reference.momentum(P0, GRADS, **kwargs))
        np.testing.assert_allclose(comp, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("form", FORMS)
def test_one_flat_buffer_equals_separate_arrays(form):
    """A model's params tile one buffer (one kernel call); the same numbers as separate
    arrays (one call per array) give the same result, bit for bit."""
    model = fn.Sequential([fn.Dense(3, 4, "tanh"), fn.Dense(4, 2)], dtype="float64")
    params = model.parameters()
    separate = [p.copy() for p in params]
    rng = np.random.default_rng(1)
    mixed = [p.copy() for p in params]
    flat = np.concatenate([p.ravel() for p in mixed])
    mixed = [flat[lo:hi].reshape(p.shape) for p, lo, hi in
             zip(params, [0, 12, 16, 24], [12, 16, 24, 26])]
    a = fn.optim.Adam(params, lr=0.1, amsgrad=True, backend=form)
    b = fn.optim.Adam(separate, lr=0.1, amsgrad=True, backend=form)
    c = fn.optim.Adam(mixed, lr=0.1, amsgrad=True, backend=form)  # flat params, own grads
    assert a._flat is not None and b._flat is None and c._flat is not None
    calls = []
    kernel = a._kernel
    a._kernel = lambda *args: calls.append(args[0].size) or kernel(*args)
    for _ in range(5):
        grads = [rng.standard_normal(p.shape) for p in params]
        model.flat_gradients[...] = np.concatenate([g.ravel() for g in grads])
        a.step(model.gradients())
        b.step(grads)
        c.step(grads)
    assert calls == [26] * 5  # one kernel call over the whole buffer per step
    for p, q, r in zip(params, separate, mixed):
        np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(p, r)
    for key in a.state:
        np.testing.assert_array_equal(a.state[key], b.state[key])
        np.testing.assert_array_equal(a.state[key], c.state[key])


# ------------------------------------------------ the lecture's worked examples
def test_lecture_exponentially_weighted_average_table():
    grads = [0.81, 0.9, 0.96, 0.34]
    assert np.round(reference.ewa(grads, 0.9), 5).tolist() == [0.081, 0.1629, 0.24261, 0.25235]
    for form in FORMS:
        w = np.zeros(1)
        opt = fn.optim.Momentum([w], lr=1.0, beta=0.9, backend=form)
        v = []
        for g in grads:
            opt.step([np.array([g])])
            v.append(float(opt.state["velocity"][0]))
        # W := W - lr V with lr = 1: W is minus the running sum of V
        assert np.round(v, 5).tolist() == [0.081, 0.1629, 0.24261, 0.25235]
        np.testing.assert_allclose(-w, np.sum(v), rtol=1e-14)

        w = np.zeros(1)
        opt = fn.optim.Momentum([w], lr=1.0, beta=0.9, bias_correction=True, backend=form)
        corrected = []
        for g in grads:
            before = w[0]
            opt.step([np.array([g])])
            corrected.append(before - w[0])  # the step is lr * V / (1 - beta^t)
        # The lecture prints 0.81, 0.8574, 0.8953, 0.7343, but its own printed inputs
        # give 0.24261 / 0.271 = 0.89524 and 0.25235 / 0.3439 = 0.73379: its last two
        # values are off in the 4th decimal. We hold the exact quotients to 4 digits
        # and the printed values to 1e-3.
        quotients = [0.081 / 0.1, 0.1629 / 0.19, 0.24261 / 0.271, 0.25235 / 0.3439]
        assert np.round(corrected, 4).tolist() == np.round(quotients, 4).tolist()
        np.testing.assert_allclose(corrected, [0.81, 0.8574, 0.8953, 0.7343], atol=1e-3)
        assert np.round(corrected[:2], 4).tolist() == [0.81, 0.8574]
    np.testing.assert_allclose(reference.ewa(grads, 0.9, True), corrected, rtol=1e-14)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("reg,expected", [({}, 0.499), ({"l2": 0.1}, 0.4985),
                                          ({"l1": 0.1}, 0.498)])
def test_lecture_regularization_worked_example(reg, expected, form):
    """W = 0.5, dL/dW = 0.1, lr 0.01, lambda 0.1 (one sample, m = 1): 0.499 without
    regularization, 0.4985 with L2, 0.498 with L1. The bias is not regularized."""
    model = fn.Sequential([fn.Dense(1, 1)], dtype="float64", backend=form)
    W, b = model.parameters()
    W[...] = 0.5
    b[...] = 0.0
    X, y = np.array([[1.0]]), np.array([[0.4]])  # quadratic loss: dJ/dW = (a - y) x = 0.1
    assert model.loss_and_grad(X, y, loss="quadratic") == pytest.approx(0.005)
    np.testing.assert_allclose(model.gradients()[0], [[0.1]])
    opt = fn.optim.SGD(model.parameters(), lr=0.01, backend=form)
    model.fit(X, y, optimizer=opt, epochs=1, batch_size=1, shuffle=False, **reg)
    assert W[0, 0] == pytest.approx(expected, abs=1e-15)
    assert b[0] == pytest.approx(-0.001, abs=1e-15)


# ------------------------------------------------------------------- L1 and L2
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("l1,l2", [(0.0, 0.3), (0.2, 0.0), (0.2, 0.3)])
def test_penalty_on_weights_only(l1, l2, form):
    X, y = fn.datasets.load_digits()
    X, y = X[:9] / 16, y[:9]
    model = fn.Sequential([fn.Dense(64, 5, "relu"), fn.Dense(5, 10)], dtype="float64",
                          backend=form)
    base = model.loss_and_grad(X, y, loss="softmax_cross_entropy")
    g0 = [g.copy() for g in model.gradients()]
    comp = model.loss_and_grad(X, y, l1=l1, l2=l2)
    weights = [p for p, r in zip(model.parameters(), model.regularized) if r]
    ref_value, ref_grads = reference.weight_penalty(weights, m=9, l1=l1, l2=l2)
    assert comp - base == pytest.approx(ref_value, rel=1e-12)
    k = 0
    for p, g, g_base, reg in zip(model.parameters(), model.gradients(), g0,
                                 model.regularized):
        if reg:
            np.testing.assert_allclose(g - g_base, ref_grads[k], rtol=1e-10, atol=1e-15)
            k += 1
        else:
            np.testing.assert_array_equal(g, g_base)  # biases: no penalty


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_penalty_kernel_forms_agree(dtype):
    rng = np.random.default_rng(3)
    param = rng.standard_normal(50).astype(dtype)
    param[7] = 0.0  # sign(0) = 0
    starts, stops = np.array([0, 20, 45], np.int64), np.array([10, 40, 50], np.int64)
    out = {}
    for form in FORMS:
        grad = rng.standard_normal(50).astype(dtype) if form == "loop" else out["loop"][2].copy()
        g = grad.copy()
        value = PENALTY_KERNELS[form](param, g, starts, stops, 0.1, 0.2)
        out[form] = (value, g, grad)
    assert out["jit"][0] == out["loop"][0]
    np.testing.assert_array_equal(out["jit"][1], out["loop"][1])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert out["vec"][0] == pytest.approx(out["loop"][0], rel=tol)
    np.testing.assert_allclose(out["vec"][1], out["loop"][1], rtol=tol, atol=tol)
    grad = out["loop"][2]
    np.testing.assert_array_equal(out["loop"][1][10:20], grad[10:20])  # outside the ranges
    assert out["loop"][1][7] == grad[7]


def test_penalty_allocates_nothing_per_call():
    model = fn.Sequential([fn.Dense(4, 3), fn.Dense(3, 2)])
    pen = WeightPenalty(0.1, 0.2, model._buffer.offsets, model.regularized)
    assert pen.starts.tolist() == [0, 15] and pen.stops.tolist() == [12, 21]
    assert not WeightPenalty(0.0, 0.0, model._buffer.offsets, model.regularized)
    with pytest.raises(ValueError, match="l1"):
        WeightPenalty(-0.1, 0.0, model._buffer.offsets, model.regularized)
    with pytest.raises(ValueError, match="l2"):
        model.fit(np.zeros((2, 4)), np.zeros((2, 2)), loss="mse", l2=float("nan"))


# ------------------------------------------------------------------------ clipping
@pytest.mark.parametrize("form", FORMS)
def test_clip_norm_semantics(form):
    """clip_grad_norm_'s coefficient max_norm / (total_norm + 1e-6), capped at 1, over
    the global norm of all params; the gradient arrays are not modified."""
    params = [np.zeros(2), np.zeros(1)]
    grads = [np.array([3.0, 0.0]), np.array([4.0])]  # global norm 5
    opt = fn.optim.SGD(params, lr=1.0, clip_norm=1.0, backend=form)
    opt.step(grads)
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(params[0], [-3 * coef, 0.0], rtol=1e-15)
    np.testing.assert_allclose(params[1], [-4 * coef], rtol=1e-15)
    assert grads[0].tolist() == [3.0, 0.0] and grads[1].tolist() == [4.0]
    # under the bound: untouched (the coefficient is capped at 1)
    params = [np.zeros(2)]
    fn.optim.SGD(params, lr=1.0, clip_norm=10.0, backend=form).step([np.array([3.0, 4.0])])
    assert params[0].tolist() == [-3.0, -4.0]


@pytest.mark.parametrize("form", FORMS)
def test_clip_value(form):
    p = np.zeros(4)
    g = np.array([-2.0, -0.1, 0.3, 5.0])
    fn.optim.SGD([p], lr=1.0, clip_value=0.5, backend=form).step([g])
    assert p.tolist() == [0.5, 0.1, -0.3, -0.5]
    assert g.tolist() == [-2.0, -0.1, 0.3, 5.0]


def test_clip_functions_like_torch():
    grads = [np.array([3.0, 0.0]), np.array([4.0])]
    total = clip_grad_norm_(grads, 1.0)
    assert total == pytest.approx(5.0, rel=1e-15)
    np.testing.assert_allclose(np.concatenate(grads), np.array([3.0, 0, 4]) / (5 + 1e-6))
    grads = [np.array([-2.0, 0.1, 3.0])]
    clip_grad_value_(grads, 1.0)
    assert grads[0].tolist() == [-1.0, 0.1, 1.0]
    for form in FORMS:
        assert SUMSQ_KERNELS[form](np.array([3.0, 4.0], np.float32)) == 25.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_checks_agree_over_blocks_and_lanes(dtype):
    """The squared norm's vector lanes give the Python loop's bits, for lengths around
    its lanes of 8, blocks of 128 and (1M + a few: the prefetching blocks) and for a
    strided array; the exponent check finds a lone inf or NaN anywhere."""
    from fastnn.kernels.optim import PARALLEL_KERNELS, PREFETCH_MIN

    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 8, 9, 127, 128, 135, 4099, 70_001, PREFETCH_MIN + 13):
        g = rng.standard_normal(n).astype(dtype)
        small = n < 10_000  # the loop run by Python: seconds for a million
        for form in (SUMSQ_KERNELS["jit"], PARALLEL_KERNELS["sumsq"]):
            got = form(g)
            assert got == pytest.approx(float(np.sum(g.astype(np.float64) ** 2)), rel=1e-12)
            if small:
                assert got == SUMSQ_KERNELS["loop"](g)
                assert form(g[::3]) == SUMSQ_KERNELS["loop"](g[::3])
    g = rng.standard_normal(PREFETCH_MIN + 13).astype(dtype)
    assert SUMSQ_KERNELS["jit"](g) == PARALLEL_KERNELS["sumsq"](g)
    if dtype == np.float32:
        for where in (0, 127, PREFETCH_MIN // 2, PREFETCH_MIN + 12):
            for bad in (np.nan, np.inf):
                h = g.copy()
                h[where] = bad
                for form in (MAX_EXPONENT_KERNELS["jit"], PARALLEL_KERNELS["max_exponent"]):
                    assert form(h.view(np.uint32), F32_EXPONENT) == F32_EXPONENT
                    assert form(g.view(np.uint32), F32_EXPONENT) < F32_EXPONENT


# ------------------------------------------------------------- non-finite gradients
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("form", FORMS)
def test_nonfinite_gradient_skips_the_step(form, bad):
    p = np.array([1.0, 2.0, 3.0])
    opt = fn.optim.Adam([p], lr=0.1, backend=form)
    opt.step([np.array([0.1, 0.2, 0.3])])
    before, state = p.copy(), {k: v.copy() for k, v in opt.state.items()}
    with pytest.warns(RuntimeWarning, match="skipped step 1"):
        assert opt.step([np.array([0.1, bad, 0.3])]) is False
    np.testing.assert_array_equal(p, before)
    for k in state:
        np.testing.assert_array_equal(opt.state[k], state[k])
    assert opt.step_count == 1 and opt.skipped_steps == 1
    # the next finite step is the second step, as if the bad one never came
    assert opt.step([np.array([0.1, 0.2, 0.3])]) is True
    ref = reference.adam(before * 0 + [1.0, 2.0, 3.0], [[0.1, 0.2, 0.3]] * 2, lr=0.1)[-1]
    np.testing.assert_allclose(p, ref, rtol=1e-14)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("form", FORMS)
def test_nonfinite_float32_gradient_skips_the_step(form, bad):
    """float32 gradients are checked through their exponent bits (no clip_norm)."""
    p = np.array([1.0, 2.0, 3.0], np.float32)
    opt = fn.optim.Adam([p], lr=0.1, backend=form)
    before = p.copy()
    with pytest.warns(RuntimeWarning, match="skipped step 0"):
        assert opt.step([np.array([0.1, 0.2, bad], np.float32)]) is False
    np.testing.assert_array_equal(p, before)
    assert not opt.state["exp_avg"].any() and opt.skipped_steps == 1
    huge = np.array([3e38, -3e38, 1.0], np.float32)  # finite, though g^2 overflows: applied
    with np.errstate(over="ignore"):
        assert opt.step([huge]) is True
    assert np.all(np.isfinite(p)) and opt.step_count == 1
    bits = np.array([0.0, -np.inf, 1.0], np.float32).view(np.uint32)
    assert MAX_EXPONENT_KERNELS[form](bits, F32_EXPONENT) == F32_EXPONENT


def test_nonfinite_gradient_raise_and_apply():
    p = np.ones(2)
    opt = fn.optim.SGD([p], lr=0.1, on_nonfinite="raise")
    with pytest.raises(FloatingPointError, match="NaN or an infinity"):
        opt.step([np.array([np.nan, 1.0])])
    assert p.tolist() == [1.0, 1.0] and opt.step_count == 0
    # 'apply' is torch.optim's behaviour: the NaN goes through
    opt = fn.optim.SGD([p], lr=0.1, on_nonfinite="apply")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step([np.array([np.nan, 1.0])])
    assert math.isnan(p[0]) and p[1] == 0.9
    with pytest.raises(ValueError, match="on_nonfinite"):
        fn.optim.SGD([p], on_nonfinite="ignore")


def test_nonfinite_with_clip_norm_skips_too():
    p = np.ones(2)
    opt = fn.optim.SGD([p], lr=0.1, clip_norm=1.0, on_nonfinite="skip")
    with pytest.warns(RuntimeWarning):
        assert not opt.step([np.array([np.inf, 1.0])])
    assert p.tolist() == [1.0, 1.0]


# ------------------------------------------------------------------- state
@pytest.mark.parametrize("name,kwargs", [
    ("sgd", {"lr": 0.1, "momentum": 0.9}), ("momentum", {"bias_correction": True}),
    ("adagrad", {"initial_accumulator_value": 0.1}), ("rmsprop", {"centered": True, "momentum": 0.5}),
    ("adadelta", {}), ("adam", {"amsgrad": True}), ("adamw", {}), ("adamax", {}),
    ("nadam", {})])
def test_state_dict_round_trip_resumes_exactly(name, kwargs):
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal((2, 3)), rng.standard_normal(3)] for _ in range(20)]
    params = [np.ones((2, 3)), np.zeros(3)]
    opt = fn.optim.get_optimizer(name, params, **kwargs)
    for g in grads[:10]:
        opt.step(g)
    saved, saved_params = opt.state_dict(), [p.copy() for p in params]
    assert saved["step_count"] == 10 and saved["optimizer"] == type(opt).__name__
    for g in grads[10:]:
        opt.step(g)
    # a new optimizer from the saved state follows the same path, bit for bit
    params2 = [p.copy() for p in saved_params]
    opt2 = fn.optim.get_optimizer(name, params2, **kwargs)
    opt2.load_state_dict(saved)
    for g in grads[10:]:
        opt2.step(g)
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p, q)
    # the saved dict is a copy: later steps did not change it
    assert saved["step_count"] == 10
    # zero_state starts afresh
    opt2.zero_state()
    assert opt2.step_count == 0
    fresh = fn.optim.get_optimizer(name, [np.ones(1)], **kwargs)
    for key, arr in opt2.state.items():
        assert np.all(arr == (fresh.state[key][0] if fresh.state[key].size else 0))
    # the config rebuilds the optimizer (what io.save relies on)
    again = type(opt)([np.ones(1)], lr=opt.lr, **opt.get_config())
    assert again.get_config() == opt.get_config()


def test_load_state_dict_mismatch():
    opt = fn.optim.Adam([np.ones(3)])
    with pytest.raises(ValueError, match="SGD"):
        fn.optim.SGD([np.ones(3)]).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="shape"):
        fn.optim.Adam([np.ones(4)]).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="max_exp_avg_sq"):
        fn.optim.Adam([np.ones(3)], amsgrad=True).load_state_dict(opt.state_dict())


# ---------------------------------------------------------- bad hyperparameters
@pytest.mark.parametrize("make,match", [
    (lambda p: fn.optim.SGD(p, lr=-0.1), "lr"),
    (lambda p: fn.optim.Adam(p, lr=float("nan")), "lr"),
    (lambda p: fn.optim.Adam(p, eps=-1e-8), "eps"),
    (lambda p: fn.optim.Adagrad(p, eps=-1.0), "eps"),
    (lambda p: fn.optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: fn.optim.Adamax(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: fn.optim.NAdam(p, betas=(0.9,)), "betas"),
    (lambda p: fn.optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda p: fn.optim.SGD(p, nesterov=True), "nesterov"),
    (lambda p: fn.optim.SGD(p, momentum=-0.9), "momentum"),
    (lambda p: fn.optim.SGD(p, weight_decay=-1.0), "weight_decay"),
    (lambda p: fn.optim.Adagrad(p, lr_decay=-1.0), "lr_decay"),
    (lambda p: fn.optim.Adagrad(p, initial_accumulator_value=-1.0),
     "initial_accumulator_value"),
    (lambda p: fn.optim.RMSprop(p, alpha=1.5), "alpha"),
    (lambda p: fn.optim.Adadelta(p, rho=-0.1), "rho"),
    (lambda p: fn.optim.NAdam(p, momentum_decay=-1.0), "momentum_decay"),
    (lambda p: fn.optim.Momentum(p, beta=1.0), "beta"),
    (lambda p: fn.optim.Adam(p, amsgrad="yes"), "amsgrad"),
    (lambda p: fn.optim.SGD(p, clip_value=1.0, clip_norm=1.0), "clip_value.*clip_norm"),
    (lambda p: fn.optim.SGD(p, clip_norm=-1.0), "clip_norm"),
    (lambda p: fn.optim.SGD(p, clip_value=0.0), "clip_value"),
    (lambda p: fn.optim.get_optimizer("adamm", p), "optimizer"),
    (lambda p: fn.optim.get_optimizer(["adam"], p), "optimizer"),
    (lambda p: fn.optim.SGD(p, backend="cuda"), "backend"),
    (lambda p: fn.optim.SGD([]), "params"),
    (lambda p: fn.optim.SGD([np.ones(3), np.ones(2, np.float32)]), r"params\[1\]"),
    (lambda p: fn.optim.SGD([np.ones((3, 4))[:, 0]]), "contiguous"),
])
def test_bad_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make([np.ones(3)])


def test_gradients_must_match_params():
    params = [np.ones((2, 2)), np.ones(2)]
    opt = fn.optim.Adam(params)
    with pytest.raises(ValueError, match="grads has 1 arrays for 2 params"):
        opt.step([np.ones((2, 2))])
    with pytest.raises(ValueError, match=r"grads\[1\]"):
        opt.step([np.ones((2, 2)), np.ones(3)])
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        opt.step([np.ones((2, 2), np.float32), np.ones(2)])
    with pytest.raises(ValueError, match="schedule"):
        fn.optim.SGD(params, lr=lambda t: -1.0).step([np.ones((2, 2)), np.ones(2)])
    assert opt.step_count == 0 and np.all(params[0] == 1)


# ------------------------------------------------------------ names and fit
def test_names_table_and_fit_by_name():
    assert sorted(OPTIMIZERS) == ["adadelta", "adagrad", "adam", "adamax", "adamw",
                                  "momentum", "nadam", "rmsprop", "sgd"]
    for name, cls in OPTIMIZERS.items():
        assert OPTIMIZER_KERNELS[cls.kernel]
        opt = fn.optim.get_optimizer(name.upper(), [np.ones(2)])
        assert isinstance(opt, cls) and opt.backend == "jit"
    X, y = fn.datasets.load_breast_cancer()
    X = (X - X.mean(0)) / X.std(0)
    model = fn.Sequential([fn.Dense(30, 1)], seed=0)
    model.fit(X, y, loss="binary_cross_entropy", optimizer="adam", epochs=2)
    assert isinstance(model.optimizer, fn.optim.Adam) and model.optimizer.step_count == 36


# (optimizer, kwargs, stated loss) after 5 epochs of mini-batches of 32 on the digits
TRAINING = [
    ("sgd", {"lr": 0.1, "momentum": 0.9}, 0.25),
    ("momentum", {"lr": 0.1, "beta": 0.9}, 0.4),
    ("adagrad", {"lr": 0.05}, 0.25),
    ("rmsprop", {"lr": 1e-3}, 0.6),
    ("adadelta", {"lr": 1.0}, 0.35),
    ("adam", {"lr": 3e-3}, 0.3),
    ("adamw", {"lr": 3e-3}, 0.3),
    ("adamax", {"lr": 5e-3}, 0.45),
    ("nadam", {"lr": 3e-3}, 0.3),
]


@pytest.mark.parametrize("name,kwargs,stated", TRAINING, ids=[t[0] for t in TRAINING])
def test_trains_a_network_on_digits(name, kwargs, stated):
    X, y = fn.datasets.load_digits()
    X = X / 16
    model = fn.Sequential([fn.Dense(64, 32, "relu"), fn.Dense(32, 10)], seed=0)
    opt = fn.optim.get_optimizer(name, model.parameters(), **kwargs)
    start = model.evaluate(X, y, loss="softmax_cross_entropy")["loss"]
    history = model.fit(X, y, optimizer=opt, epochs=5, batch_size=32)
    final = model.evaluate(X, y)
    assert start > 2.0
    assert final["loss"] < stated, (name, history["loss"], final)
    assert final["accuracy"] > 0.9


def test_l2_shrinks_the_weights_in_training():
    X, y = fn.datasets.load_digits()
    X = X / 16
    norms = {}
    for l2 in (0.0, 1.0):
        model = fn.Sequential([fn.Dense(64, 32, "relu"), fn.Dense(32, 10)], seed=0)
        model.fit(X, y, loss="softmax_cross_entropy",
                  optimizer=fn.optim.Adam(model.parameters(), lr=3e-3), epochs=3, l2=l2)
        norms[l2] = sum(float(np.sum(p * p)) for p, r in
                        zip(model.parameters(), model.regularized) if r)
    assert norms[1.0] < 0.8 * norms[0.0]


# --------------------------------------------------------- live PyTorch (optional)
def test_live_against_torch_random_hyperparameters():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    p0, grads = rng.standard_normal(5), rng.standard_normal((30, 5))
    cases = [("Adam", {"lr": 0.03, "betas": (0.8, 0.95), "weight_decay": 0.05,
                       "amsgrad": True}),
             ("RMSprop", {"lr": 0.02, "alpha": 0.9, "centered": True, "momentum": 0.3}),
             ("SGD", {"lr": 0.05, "momentum": 0.7, "dampening": 0.2, "weight_decay": 0.01}),
             ("NAdam", {"lr": 0.02, "momentum_decay": 0.02, "decoupled_weight_decay": True,
                        "weight_decay": 0.1})]
    # NAdam keeps its product of momenta in torch's default dtype
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _compare_live(torch, cases, p0, grads)
    finally:
        torch.set_default_dtype(default)


def _compare_live(torch, cases, p0, grads):
    for name, kwargs in cases:
        p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
        topt = getattr(torch.optim, name)([p], foreach=False, **kwargs)
        ref = []
        for g in grads:
            p.grad = torch.tensor(g, dtype=torch.float64)
            topt.step()
            ref.append(p.detach().numpy().copy())
        comp, _ = _trajectory(name, kwargs, "jit", p0=p0, grads=grads)
        np.testing.assert_allclose(comp, np.array(ref), rtol=1e-10, atol=1e-13)
