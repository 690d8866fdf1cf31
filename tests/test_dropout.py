"""Dropout and its counter-based generator: pinned words of the generator, the three
forms and the naive twin agree to the bit, masks independent of the thread count and
of the serial or parallel compilation, statistics of the masks and of the hash,
inverted scaling, per-step reproducibility, and finite differences through a fixed
mask."""

import numba
import numpy as np
import pytest

import fastnn as fn
from fastnn.kernels.dropout import DROPOUT_BACKWARD, DROPOUT_FORWARD, dropout_forward_jit
from fastnn.kernels.random import CHUNK, UNIFORM, keep_threshold, triple32, words_vec

import reference

FORMS = ("loop", "vec", "jit")
SHAPES = [(1, 1), (1, 7), (5, 1), (3, 5), (2, CHUNK + 3)]  # the last spans two chunks plus a tail
DTYPES = [np.float32, np.float64]
KEY = np.uint64(0x0123456789ABCDEF)
# Products are taken in the array's dtype, with the scale rounded to it as PyTorch
# does: two roundings of half an ulp each, within 1.2e-7 of the exact product in float32.
RTOL = {np.float32: 2.5e-7, np.float64: 1e-15}


def _dropout(form, x, rate, key=KEY, step=3):
    mask = np.empty(x.shape, np.uint8)
    out = np.empty_like(x)
    kernel = DROPOUT_FORWARD[form] if isinstance(form, str) else form
    kernel(x, key, step, keep_threshold(rate), 1.0 / (1.0 - rate), mask, out)
    return out, mask


def _big_mask(rate, key=KEY, step=0, shape=(1000, 1000)):
    x = np.ones(shape, np.float32)
    return _dropout("jit", x, rate, key, step)[1].astype(np.float64)


# ------------------------------------------------------------------- generator
@pytest.mark.parametrize("key, step, expected", [
    # words 0..3 of three streams: a change here changes every saved run's masks
    (KEY, 0, (0x664BCEFA, 0x811C0F71, 0xFD333771, 0x0FD73671)),
    (KEY, 1, (0x1A11F87F, 0xFC1301D9, 0x5122969C, 0x2C6B172D)),
    (0, 0, (0x94308CBB, 0x32BB5592, 0x347FC486, 0x60DB3E9F)),
])
def test_generator_known_answers(key, step, expected):
    comp = words_vec(np.uint64(key), step, 4)
    assert tuple(int(w) for w in comp) == expected
    assert tuple(reference.counter_words(key, step, 4)) == expected


def test_triple32_matches_the_twin_and_is_a_bijection_on_a_sample():
    x = np.random.default_rng(0).integers(0, 2**32, 5000, dtype=np.uint64)
    comp = triple32(np.uint32(x))
    assert comp.dtype == np.uint32
    assert [int(c) for c in comp] == [reference.triple32(int(v)) for v in x]
    assert int(triple32(np.uint32(12345))) == reference.triple32(12345)  # scalar path
    assert np.unique(comp).size == np.unique(x).size


def test_triple32_avalanche():
    """Flipping one input bit flips each output bit with probability 1/2: the property
    the hash was chosen for. 2^16 inputs: the standard error of a probability is 0.002,
    so a bound of 0.012 is 6 of them (a murmur3-quality hash also passes; a plain
    multiply, whose low output bits ignore high input bits, fails by far)."""
    x = np.random.default_rng(1).integers(0, 2**32, 2**16, dtype=np.uint64).astype(np.uint32)
    h = triple32(x)
    bits = np.arange(32, dtype=np.uint32)
    worst = 0.0
    for i in range(32):
        diff = h ^ triple32(x ^ np.uint32(1 << i))
        p = ((diff[:, None] >> bits) & 1).mean(axis=0)
        worst = max(worst, float(np.max(np.abs(p - 0.5))))
    assert worst < 0.012


@pytest.mark.parametrize("size", [1, 3, 4, 5, CHUNK + 7])
def test_uniform_three_forms_agree(size):
    comp = {}
    for form in FORMS:
        comp[form] = np.full(size, -1.0)
        UNIFORM[form](KEY, 11, comp[form])
    np.testing.assert_array_equal(comp["jit"], comp["loop"])
    np.testing.assert_array_equal(comp["vec"], comp["loop"])
    assert np.all((comp["jit"] >= 0) & (comp["jit"] < 1))


def test_uniform_is_uniform():
    u = np.empty(400_000)
    UNIFORM["jit"](KEY, 0, u)
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    expected = u.size / 20
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 45  # 19 degrees of freedom: P(chi2 > 45) < 1e-3
    assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / u.size)


# --------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.75])
def test_forward_three_forms_and_twin_agree(rate, shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    ref_keep = reference.dropout_keep(KEY, 3, shape, rate)
    ref_out = x.astype(np.float64) * ref_keep / (1.0 - rate)
    comp = {form: _dropout(form, x, rate) for form in FORMS}
    rtol = RTOL[dtype]
    for form in FORMS:
        comp_out, comp_mask = comp[form]
        assert comp_out.dtype == dtype
        np.testing.assert_array_equal(comp_mask, ref_keep)
        np.testing.assert_allclose(comp_out, ref_out, rtol=rtol, atol=0)
        np.testing.assert_array_equal(comp_out, comp["loop"][0])  # forms agree to the bit


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_applies_the_same_mask_and_scale(shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    _, mask = _dropout("jit", x, 0.4)
    ref_dx = dy.astype(np.float64) * mask / 0.6
    comp = {}
    for form in FORMS:
        comp[form] = np.empty_like(dy)
        DROPOUT_BACKWARD[form](dy, mask, 1 / 0.6, comp[form])
        np.testing.assert_allclose(comp[form], ref_dx, rtol=RTOL[dtype], atol=0)
        np.testing.assert_array_equal(comp[form], comp["loop"])  # forms agree to the bit


def test_masks_do_not_depend_on_the_thread_count():
    x = np.random.default_rng(2).standard_normal((256, 1000)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        out1, mask1 = _dropout("jit", x, 0.5)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        out2, mask2 = _dropout("jit", x, 0.5)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(mask1, mask2)
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(_dropout("vec", x, 0.5)[1], mask1)


@pytest.mark.parametrize("threads", [1, 2])
def test_serial_and_parallel_compilations_agree(threads):
    """The JIT form runs its serial compilation below _config.PARALLEL_MIN elements and
    its parallel one above: both must draw the same mask, at any thread count."""
    x = np.random.default_rng(3).standard_normal((3, 2 * CHUNK + 5)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        out_p, mask_p = _dropout(dropout_forward_jit.parallel, x, 0.3)
    finally:
        numba.set_num_threads(before)
    out_s, mask_s = _dropout(dropout_forward_jit.serial, x, 0.3)
    np.testing.assert_array_equal(mask_p, mask_s)
    np.testing.assert_array_equal(out_p, out_s)
    np.testing.assert_array_equal(mask_s, reference.dropout_keep(KEY, 3, x.shape, 0.3))


@pytest.mark.parametrize("given,size,expected", [
    (2, 256 * 1024, "parallel"), (2, 256 * 1024 - 1, "serial"), (1, 256 * 1024, "serial")])
def test_jit_form_splits_from_parallel_min_with_threads_given(monkeypatch, given, size,
                                                             expected):
    """DROPOUT_FORWARD['jit'] runs its parallel compilation from _config.PARALLEL_MIN
    elements (262144 by default) once fastnn was given threads, else its serial one."""
    import fastnn._config as config

    monkeypatch.setattr(config, "PARALLEL_MIN", 262144)
    monkeypatch.setattr(config, "threads", lambda: given)
    called = []
    for name in ("serial", "parallel"):
        monkeypatch.setattr(dropout_forward_jit, name,
                            lambda *args, name=name: called.append(name))
    _dropout("jit", np.zeros((1, size), np.float32), 0.2)
    assert called == [expected]


# ------------------------------------------------------------------ statistics
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_kept_fraction_within_standard_errors(rate):
    keep = _big_mask(rate)
    p = 1.0 - rate
    se = np.sqrt(p * (1 - p) / keep.size)
    assert abs(keep.mean() - p) < 4 * se


def _corr(a, b):
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("lag", [1, 2, 3, 4, 5, 1000, CHUNK])  # neighbours, rows, chunks
def test_no_correlation_between_neighbouring_elements(lag):
    keep = _big_mask(0.5).reshape(-1)
    r = _corr(keep[:-lag], keep[lag:])
    assert abs(r) < 4 / np.sqrt(keep.size)


def test_no_correlation_between_consecutive_steps_or_layers():
    m0 = _big_mask(0.5, step=0).reshape(-1)
    m1 = _big_mask(0.5, step=1).reshape(-1)
    other_key = _big_mask(0.5, key=np.uint64(int(KEY) + 1)).reshape(-1)
    bound = 4 / np.sqrt(m0.size)
    assert abs(_corr(m0, m1)) < bound
    assert abs(_corr(m0, other_key)) < bound
    assert np.mean(m0 == m1) == pytest.approx(0.5, abs=4 * 0.5 / np.sqrt(m0.size))


# ---------------------------------------------------------------------- layer
def _net(rate=0.5, seed=0, backend="jit", dtype="float64"):
    return fn.Sequential([fn.Dense(4, 6, activation="tanh"), fn.Dropout(rate),
                          fn.Dense(6, 3)], seed=seed, backend=backend, dtype=dtype)


def test_identity_in_evaluation_and_inverted_scaling_in_training():
    layer = fn.Dropout(0.25)
    model = fn.Sequential([fn.Dense(3, 8), layer], dtype="float64")
    x = np.random.default_rng(3).standard_normal((50, 8))
    assert layer.forward(x, training=False) is x
    out = layer.forward(x, training=True)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.75, rtol=1e-15)
    assert 0.6 < kept.mean() < 0.9
    assert model.step == 0


def test_mask_fixed_within_a_step_and_new_at_the_next():
    model = _net()
    X = np.random.default_rng(4).standard_normal((20, 4))
    y = np.arange(20) % 3
    a = model._forward(X, True).copy()
    b = model._forward(X, True).copy()
    np.testing.assert_array_equal(a, b)  # what gradcheck relies on
    model.loss_and_grad(X, y, loss="softmax_cross_entropy")
    assert model.step == 1
    c = model._forward(X, True).copy()
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(model._forward(X, False), model._forward(X, False))


def test_same_seed_same_masks_other_seed_other_masks():
    X = np.random.default_rng(5).standard_normal((30, 4))
    masks = []
    for seed in (7, 7, 8):
        model = _net(seed=seed)
        model._forward(X, True)
        masks.append(model.layers[1]._mask.copy())
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], masks[2])


def test_two_dropout_layers_draw_different_masks():
    model = fn.Sequential([fn.Dense(5, 40), fn.Dropout(0.5), fn.Dropout(0.5)], dtype="float64")
    assert model.layers[1].key != model.layers[2].key


def test_step_advances_once_per_batch_in_fit():
    model = _net()
    X = np.random.default_rng(6).standard_normal((25, 4))
    model.fit(X, np.arange(25) % 3, loss="softmax_cross_entropy", epochs=3, batch_size=10)
    assert model.step == 9  # 3 batches (10, 10, 5) per epoch


def test_training_identical_across_backends():
    X = np.random.default_rng(7).standard_normal((12, 4))
    y = np.arange(12) % 3
    weights, masks = [], []
    for backend in FORMS:
        model = _net(backend=backend)
        model.fit(X, y, loss="softmax_cross_entropy", epochs=2, batch_size=5,
                  optimizer=fn.optim.SGD(model.parameters(), lr=0.1, backend=backend))
        weights.append(model.flat_parameters.copy())
        masks.append(model.layers[1]._mask.copy())
    for w, mask in zip(weights[1:], masks[1:]):
        np.testing.assert_array_equal(mask, masks[0])
        np.testing.assert_allclose(w, weights[0], rtol=1e-12)  # BLAS sums in its own order


def test_gradcheck_through_a_fixed_mask():
    model = _net(rate=0.4)
    X = np.random.default_rng(8).standard_normal((10, 4))
    result = fn.gradcheck(model, X, np.arange(10) % 3, loss="softmax_cross_entropy",
                          rtol=1e-6, atol=1e-8)
    assert result.ok, (result.max_abs_error, result.max_rel_error)
    assert result.n_checked == model.n_parameters


def test_first_layer_dropout_on_the_inputs():
    model = fn.Sequential([fn.Dropout(0.2, n_in=4), fn.Dense(4, 2)], dtype="float64")
    assert model.n_features == 4
    X = np.random.default_rng(9).standard_normal((6, 4))
    assert model.loss_and_grad(X, [0, 1, 0, 1, 0, 1], loss="softmax_cross_entropy") > 0


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True, "0.5", float("nan")])
def test_bad_rate_is_refused(rate):
    with pytest.raises(ValueError, match="rate"):
        fn.Dropout(rate)


def test_first_layer_without_width_is_refused():
    with pytest.raises(ValueError, match="n_in"):
        fn.Sequential([fn.Dropout(0.5), fn.Dense(3, 2)])
