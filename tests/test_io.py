"""Saving and loading: round trips, resumed training, refusal of bad files, atomic writes."""

import inspect
import io as bytes_io
import json
import os
import pickle

import numpy as np
import pytest

import fastnn as fn
from fastnn import io as fio
from fastnn import optim, schedules

DTYPES = ["float32", "float64"]


def _data(n=48, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.integers(0, k, n)
    return X, y


# Every layer class load can build, as a middle layer of width 6, non-default arguments.
MIDDLE = {
    "Activation": lambda: fn.Activation("leaky_relu", alpha=0.3),
    "Identity": fn.Identity,
    "Sigmoid": fn.Sigmoid,
    "Tanh": fn.Tanh,
    "ReLU": fn.ReLU,
    "Softmax": fn.Softmax,
    "LeakyReLU": lambda: fn.LeakyReLU(0.05),
    "Dropout": lambda: fn.Dropout(0.25),
    "BatchNorm": lambda: fn.BatchNorm(6, momentum=0.3, eps=1e-3),
    "LayerNorm": lambda: fn.LayerNorm(6, eps=1e-4),
}


def test_every_registered_layer_is_tested():
    assert sorted(fio.LAYERS) == sorted(set(MIDDLE) | {"Dense"})


def _model(middle, dtype="float64", backend="vec", seed=3):
    layers = [fn.Dense(5, 6, activation="leaky_relu", init="he_uniform", alpha=0.2)]
    layers += [MIDDLE[name]() for name in middle]
    layers.append(fn.Dense(6, 3))
    return fn.Sequential(layers, seed=seed, dtype=dtype, backend=backend)


def _state(model):
    """Everything that defines a model's behaviour, for comparisons."""
    return (model.flat_parameters.copy(),
            [{k: np.array(v) for k, v in layer.extra_state().items()} for layer in model.layers])


def _assert_same_state(a, b):
    comp_params, comp_extra = a
    ref_params, ref_extra = b
    assert comp_params.dtype == ref_params.dtype
    np.testing.assert_array_equal(comp_params, ref_params)
    assert [sorted(e) for e in comp_extra] == [sorted(e) for e in ref_extra]
    for ce, re in zip(comp_extra, ref_extra):
        for k in re:
            np.testing.assert_array_equal(ce[k], re[k])


# ------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("middle", [[]] + [[name] for name in MIDDLE]
                         + [["BatchNorm", "ReLU", "Dropout", "LayerNorm"]])
def test_round_trip_every_layer(tmp_path, middle, dtype):
    X, y = _data()
    model = _model(middle, dtype)
    model.fit(X, y, loss="softmax_cross_entropy", optimizer="sgd", epochs=2, batch_size=16)
    path = tmp_path / "m.npz"
    assert model.save(path) == str(path)
    comp = fn.load(path)
    assert type(comp) is fn.Sequential
    assert [type(la) for la in comp.layers] == [type(la) for la in model.layers]
    assert [la.config() for la in comp.layers] == [la.config() for la in model.layers]
    assert comp.dtype == np.dtype(dtype) and comp.backend == "vec" and comp.seed == 3
    assert comp.loss.name == "softmax_cross_entropy"
    assert comp.training is False and comp.optimizer is None
    _assert_same_state(_state(comp), _state(model))
    np.testing.assert_array_equal(comp.predict_proba(X), model.predict_proba(X))
    # the running statistics compared above were trained, not a new layer's defaults
    for trained, new in zip(model.layers, _model(middle, dtype).layers):
        for k, v in trained.extra_state().items():
            assert not np.array_equal(v, new.extra_state()[k])


@pytest.mark.parametrize("backend", ["loop", "vec", "jit"])
@pytest.mark.parametrize("loss,n_out", [("mse", 1), ("binary_cross_entropy", 1),
                                        ("quadratic", 2), (None, 2)])
def test_round_trip_backend_and_loss(tmp_path, backend, loss, n_out):
    model = fn.Sequential([fn.Dense(4, n_out)], seed=None, dtype="float32", backend=backend)
    if loss is not None:
        model.loss_and_grad(np.ones((2, 4)), np.ones((2, n_out)) * 0.5, loss=loss)
    model.save(tmp_path / "m.npz")
    comp = fn.load(tmp_path / "m.npz")
    assert comp.backend == backend and comp.seed is None
    assert (comp.loss.name if comp.loss else None) == loss
    np.testing.assert_array_equal(comp.flat_parameters, model.flat_parameters)


def test_metadata_round_trip(tmp_path):
    model = _model([])
    meta = {"mean": np.array([1.5, -2.0]), "names": np.array(["a", "bé"]),
            "target": "y", "classes": [0, "x", 2.5], "nested": {"k": [True, None]}}
    model.save(tmp_path / "m.npz", metadata=meta)
    comp = fn.load(tmp_path / "m.npz").metadata
    assert sorted(comp) == sorted(meta)
    np.testing.assert_array_equal(comp["mean"], meta["mean"])
    assert comp["mean"].dtype == np.float64
    assert list(comp["names"]) == ["a", "bé"]
    assert comp["classes"] == [0, "x", 2.5] and comp["nested"] == {"k": [True, None]}
    # a loaded model saved again keeps its metadata
    fn.load(tmp_path / "m.npz").save(tmp_path / "again.npz")
    assert fn.load(tmp_path / "again.npz").metadata["target"] == "y"


def test_saved_file_is_plain_npz_with_json_header(tmp_path):
    model = _model([])
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        header = json.loads(data["header"].tobytes().decode("utf-8"))
        assert sorted(data.files) == ["header", "params"]
        np.testing.assert_array_equal(data["params"], model.flat_parameters)
    assert header["format"] == "fastnn.model"
    assert header["format_version"] == fio.FORMAT_VERSION
    assert header["fastnn_version"] == fn.__version__
    assert header["dtype"] == "float64" and header["backend"] == "vec"
    assert [la["class"] for la in header["layers"]] == ["Dense", "Dense"]
    assert header["layers"][0]["config"] == {"n_in": 5, "n_out": 6, "activation": "leaky_relu",
                                             "init": "he_uniform", "alpha": 0.2}


# ---------------------------------------------------------------- optimizers
def _optimizer_names():
    return sorted(optim.OPTIMIZERS)


# Non-default hyperparameters: each must come back, and the state they create.
_OPTIMIZER_ARGS = {
    "sgd": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": dict(lr=0.01, amsgrad=True, clip_norm=0.5, maximize=False),
    "adamw": dict(betas=(0.8, 0.95), weight_decay=0.1, clip_value=0.1),
    "nadam": dict(momentum_decay=5e-3),
    "rmsprop": dict(momentum=0.5, centered=True),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kwargs", [(n, {}) for n in _optimizer_names()]
                         + sorted(_OPTIMIZER_ARGS.items()))
def test_every_optimizer_resumes_bit_for_bit(tmp_path, name, kwargs, dtype):
    """k steps, save, load, k more steps == 2k steps without stopping."""
    X, y = _data()
    ref = _model([], dtype)
    ref_opt = optim.get_optimizer(name, ref.parameters(), backend="vec", **kwargs)
    comp = _model([], dtype)
    comp_opt = optim.get_optimizer(name, comp.parameters(), backend="vec", **kwargs)

    def steps(model, opt, lo, hi):
        for i in range(lo, hi):
            model.loss_and_grad(X[8 * i: 8 * i + 8], y[8 * i: 8 * i + 8],
                                loss="softmax_cross_entropy")
            opt.step(model.gradients())

    steps(ref, ref_opt, 0, 6)
    steps(comp, comp_opt, 0, 3)
    comp.save(tmp_path / "ckpt.npz", include_optimizer=True, optimizer=comp_opt)
    resumed = fn.load(tmp_path / "ckpt.npz")
    opt = resumed.optimizer
    assert type(opt) is type(comp_opt) and opt.step_count == 3
    assert opt.backend == "vec" and opt.get_config() == comp_opt.get_config()
    assert opt.lr == comp_opt.lr
    steps(resumed, opt, 3, 6)
    np.testing.assert_array_equal(resumed.flat_parameters, ref.flat_parameters)


# Values for the schedules' constructor arguments, by name.
_SCHEDULE_ARGS = {"lr": 0.1, "initial_learning_rate": 0.2, "step_size": 2, "decay_steps": 3,
                  "decay_rate": 0.5, "gamma": 0.5, "alpha": 0.1, "staircase": True}


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_every_schedule_resumes_bit_for_bit(tmp_path, name):
    cls = schedules.SCHEDULES[name]
    args = {k: _SCHEDULE_ARGS[k] for k, p in inspect.signature(cls).parameters.items()
            if p.default is inspect.Parameter.empty}
    X, y = _data()

    def make():
        model = _model([], "float64")
        return model, optim.Adam(model.parameters(), lr=cls(**args), backend="vec")

    ref, ref_opt = make()
    comp, comp_opt = make()
    ref.fit(X, y, loss="softmax_cross_entropy", optimizer=ref_opt, epochs=3, batch_size=16)
    comp.fit(X, y, loss="softmax_cross_entropy", optimizer=comp_opt, epochs=1, batch_size=16)
    comp.save(tmp_path / "m.npz", include_optimizer=True)
    resumed = fn.load(tmp_path / "m.npz")
    assert type(resumed.optimizer.lr) is cls and resumed.optimizer.lr == comp_opt.lr
    assert resumed.optimizer.current_lr() == comp_opt.current_lr()
    resumed.fit(X, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(resumed.flat_parameters, ref.flat_parameters)
    assert resumed.optimizer.step_count == ref_opt.step_count == 9


def test_plain_callable_learning_rate_is_refused(tmp_path):
    model = _model([])
    opt = optim.SGD(model.parameters(), lr=lambda step: 0.1 / (1 + step))
    (tmp_path / "m.npz").write_bytes(b"old")
    with pytest.raises(ValueError, match="schedule"):
        model.save(tmp_path / "m.npz", include_optimizer=True, optimizer=opt)
    assert (tmp_path / "m.npz").read_bytes() == b"old"


def test_include_optimizer_needs_one(tmp_path):
    with pytest.raises(ValueError, match="no optimizer"):
        _model([]).save(tmp_path / "m.npz", include_optimizer=True)
    with pytest.raises(ValueError, match="include_optimizer"):
        model = _model([])
        model.save(tmp_path / "m.npz", optimizer=optim.SGD(model.parameters()))
    other = _model([])
    with pytest.raises(ValueError, match="does not hold this model's parameters"):
        _model([]).save(tmp_path / "m.npz", include_optimizer=True,
                        optimizer=optim.SGD(other.parameters()))
    assert not (tmp_path / "m.npz").exists()


def test_non_finite_parameters_are_not_saved(tmp_path):
    model = _model([])
    model.flat_parameters[3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_unknown_layer_class_is_refused(tmp_path):
    class Custom(fn.Identity):
        pass

    model = fn.Sequential([fn.Dense(2, 2), Custom()], backend="vec")
    with pytest.raises(ValueError, match="Custom is not one of the layers"):
        model.save(tmp_path / "m.npz")


# ------------------------------------------------------- resumed training via fit
@pytest.mark.parametrize("middle", [[], ["Dropout"], ["BatchNorm", "ReLU", "Dropout"]])
def test_fit_resumed_from_checkpoint_equals_uninterrupted(tmp_path, middle):
    """Shuffling, dropout masks, running statistics and the optimizer all continue:
    2 + 2 epochs through a file give the same bits as 4 epochs."""
    X, y = _data(n=60)
    names = [n for n in optim.OPTIMIZERS if n != "sgd"]
    opt_name = "adam" if "adam" in names else (names[0] if names else "sgd")

    def make():
        model = _model(middle, "float32", backend="jit", seed=7)
        return model, optim.get_optimizer(opt_name, model.parameters(), lr=0.05)

    ref, ref_opt = make()
    ref_hist = ref.fit(X, y, loss="softmax_cross_entropy", optimizer=ref_opt, epochs=4,
                       batch_size=16)
    comp, comp_opt = make()
    comp.fit(X, y, loss="softmax_cross_entropy", optimizer=comp_opt, epochs=2, batch_size=16)
    comp.save(tmp_path / "ckpt.npz", include_optimizer=True)
    del comp, comp_opt
    resumed = fn.load(tmp_path / "ckpt.npz")
    hist = resumed.fit(X, y, epochs=2, batch_size=16)  # loss and optimizer from the file
    _assert_same_state(_state(resumed), _state(ref))
    assert hist.history["loss"] == ref_hist.history["loss"][2:]


# ------------------------------------------------------------ refusing bad files
def _good_file(tmp_path):
    X, y = _data()
    model = _model(["BatchNorm"], "float32")
    model.fit(X, y, loss="softmax_cross_entropy", optimizer="adam", epochs=1)
    path = tmp_path / "good.npz"
    model.save(path, include_optimizer=True, metadata={"m": np.arange(3.0)})
    return path


def _rewrite(path, out, header=None, arrays=None, drop=()):
    """A copy of ``path`` with its header edited and arrays replaced or dropped,
    written by plain NumPy (the way a tampered file would be made)."""
    with np.load(path, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files if k not in drop}
    h = json.loads(contents["header"].tobytes().decode())
    if header:
        header(h)
    contents["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    contents.update(arrays or {})
    np.savez(out, **contents)
    return out


class _Payload:
    def __reduce__(self):
        return (os.mkdir, ("/tmp/fastnn-pickle-was-executed",))


def _bad_files(tmp_path):
    good = _good_file(tmp_path)
    blob = good.read_bytes()
    bad = {}

    def put(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        bad[name] = p

    put("truncated.npz", blob[: len(blob) // 2])
    put("truncated_end.npz", blob[:-10])
    put("empty.npz", b"")
    put("text.npz", b"W1,b1\n1,2\n")
    # flip one byte inside the parameter array's data: the zip CRC catches it
    at = blob.find(fn.load(good).flat_parameters.tobytes()) + 8
    assert at > 8
    flipped = bytearray(blob)
    flipped[at] ^= 0xFF
    put("corrupted.npz", bytes(flipped))
    put("pickle.pkl", pickle.dumps(_Payload()))
    buf = bytes_io.BytesIO()
    np.save(buf, np.array([_Payload()], dtype=object), allow_pickle=True)
    put("pickle.npy", buf.getvalue())
    obj = np.array([_Payload()], dtype=object)
    bad["pickle_member.npz"] = _rewrite(good, tmp_path / "pickle_member.npz",
                                        arrays={"metadata.0": obj})
    bad["pickle_header.npz"] = _rewrite(good, tmp_path / "pickle_header.npz")
    np.savez(bad["pickle_header.npz"], header=obj, params=np.zeros(3))

    def newer(h):
        h["format_version"] = fio.FORMAT_VERSION + 1

    bad["newer.npz"] = _rewrite(good, tmp_path / "newer.npz", header=newer)

    def other_format(h):
        h["format"] = "keras"

    bad["other_format.npz"] = _rewrite(good, tmp_path / "other_format.npz", header=other_format)

    def wider(h):
        h["layers"][0]["config"]["n_out"] = 7

    bad["wrong_architecture.npz"] = _rewrite(good, tmp_path / "wrong_architecture.npz",
                                             header=wider)
    def huge(h):  # 6 x 10^7 weights: refused from the count, never allocated
        h["layers"][0]["config"]["n_in"] = 10 ** 7

    bad["huge.npz"] = _rewrite(good, tmp_path / "huge.npz", header=huge)
    deep = np.frombuffer(("[" * 100000 + "]" * 100000).encode(), np.uint8)
    bad["deep_header.npz"] = _rewrite(good, tmp_path / "deep_header.npz",
                                      arrays={"header": deep})
    bad["short_params.npz"] = _rewrite(good, tmp_path / "short_params.npz",
                                       arrays={"params": np.zeros(5, np.float32)})
    n = fn.load(good).n_parameters
    bad["wrong_dtype.npz"] = _rewrite(good, tmp_path / "wrong_dtype.npz",
                                      arrays={"params": np.zeros(n, np.float64)})
    bad["nan_params.npz"] = _rewrite(good, tmp_path / "nan_params.npz",
                                     arrays={"params": np.full(n, np.nan, np.float32)})
    bad["int_params.npz"] = _rewrite(good, tmp_path / "int_params.npz",
                                     arrays={"params": np.zeros(n, np.int32)})
    with np.load(good) as data:
        state_key = next(k for k in data.files
                         if k.startswith("optimizer.") and data[k].size > 1)
        nan_state = np.full_like(data[state_key], np.nan)
        running_var = data["layers.1.running_var"]
    bad["nan_optimizer_state.npz"] = _rewrite(good, tmp_path / "nan_optimizer_state.npz",
                                              arrays={state_key: nan_state})
    bad["short_running_var.npz"] = _rewrite(good, tmp_path / "short_running_var.npz",
                                            arrays={"layers.1.running_var": running_var[:-1]})
    bad["f64_running_var.npz"] = _rewrite(
        good, tmp_path / "f64_running_var.npz",
        arrays={"layers.1.running_var": running_var.astype(np.float64)})
    bad["no_running_var.npz"] = _rewrite(good, tmp_path / "no_running_var.npz",
                                         drop=("layers.1.running_var",))
    bad["extra_array.npz"] = _rewrite(good, tmp_path / "extra_array.npz",
                                      arrays={"evil": np.zeros(2)})
    bad["no_params.npz"] = _rewrite(good, tmp_path / "no_params.npz", drop=("params",))
    bad["no_header.npz"] = tmp_path / "no_header.npz"
    np.savez(bad["no_header.npz"], params=np.zeros(n, np.float32))

    def unknown_layer(h):
        h["layers"][0]["class"] = "os.system"

    bad["unknown_layer.npz"] = _rewrite(good, tmp_path / "unknown_layer.npz",
                                        header=unknown_layer)

    def bad_config(h):
        h["layers"][0]["config"]["activation"] = "__import__('os')"

    bad["bad_config.npz"] = _rewrite(good, tmp_path / "bad_config.npz", header=bad_config)

    def bad_opt_state(h):
        h["optimizer"]["state"]["step_count"] = -1

    bad["bad_optimizer.npz"] = _rewrite(good, tmp_path / "bad_optimizer.npz",
                                        header=bad_opt_state)

    def unknown_opt(h):
        h["optimizer"]["name"] = "evil"

    bad["unknown_optimizer.npz"] = _rewrite(good, tmp_path / "unknown_optimizer.npz",
                                            header=unknown_opt)
    bad["missing_metadata_array.npz"] = _rewrite(good, tmp_path / "missing_meta.npz",
                                                 drop=("metadata.0",))

    def bad_rng(h):
        h["training_state"]["shuffle_rng"] = {"bit_generator": "MT19937", "state": 3}

    bad["bad_rng.npz"] = _rewrite(good, tmp_path / "bad_rng.npz", header=bad_rng)
    bad["header_not_json.npz"] = _rewrite(good, tmp_path / "header_not_json.npz",
                                          arrays={"header": np.frombuffer(b"{nope", np.uint8)})
    return good, bad


def test_bad_files_are_refused_and_the_model_is_untouched(tmp_path):
    if os.path.exists("/tmp/fastnn-pickle-was-executed"):
        os.rmdir("/tmp/fastnn-pickle-was-executed")
    good, bad = _bad_files(tmp_path)
    model = fn.load(good)
    before = _state(model)
    loss, opt, meta = model.loss, model.optimizer, model.metadata
    messages = {}
    for name, path in sorted(bad.items()):
        with pytest.raises(fn.FastnnFormatError) as err:
            fn.load(path)
        messages[name] = str(err.value)
        with pytest.raises(ValueError):
            model.load_weights(path)
        _assert_same_state(_state(model), before)
        assert model.loss is loss and model.optimizer is opt and model.metadata is meta
    assert not os.path.exists("/tmp/fastnn-pickle-was-executed")
    assert issubclass(fn.FastnnFormatError, ValueError)
    assert "pickle" in messages["pickle.pkl"] and "pickle" in messages["pickle_member.npz"]
    assert "truncated or corrupted" in messages["truncated.npz"]
    assert "CRC" in messages["corrupted.npz"]
    assert "upgrade fastnn" in messages["newer.npz"]
    assert "not a fastnn model" in messages["other_format.npz"]
    assert "'os.system'" in messages["unknown_layer.npz"]
    assert "evil" in messages["extra_array.npz"]
    assert "the layers have 60000039 parameters" in messages["huge.npz"]
    # one line each, naming the file
    for name, msg in messages.items():
        assert "\n" not in msg and str(tmp_path) in msg, (name, msg)


def test_missing_file_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        fn.load(tmp_path / "nope.npz")


def test_load_weights_into_a_model(tmp_path):
    X, y = _data()
    src = _model([], "float64", seed=1)
    src.fit(X, y, loss="softmax_cross_entropy", optimizer="sgd", epochs=1)
    src.save(tmp_path / "m.npz")
    dst = _model([], "float32", seed=2)
    assert dst.load_weights(tmp_path / "m.npz") is dst
    np.testing.assert_array_equal(dst.flat_parameters, src.flat_parameters.astype(np.float32))
    other = fn.Sequential([fn.Dense(5, 4), fn.Dense(4, 3)], backend="vec")
    before = other.flat_parameters.copy()
    with pytest.raises(fn.FastnnFormatError, match="shape"):
        other.load_weights(tmp_path / "m.npz")
    np.testing.assert_array_equal(other.flat_parameters, before)


# ---------------------------------------------------------------- atomic writes
def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = _model([], seed=1)
    model.save(path)
    old = path.read_bytes()
    real_savez = np.savez

    def crash_midway(f, **arrays):
        real_savez(f, params=arrays["params"])  # some bytes reach the temporary file
        raise OSError("disk full")

    monkeypatch.setattr(fio.np, "savez", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        _model([], seed=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary file left behind

    def no_rename(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(fio.os, "replace", no_rename)
    with pytest.raises(OSError, match="rename failed"):
        _model([], seed=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    np.testing.assert_array_equal(fn.load(path).flat_parameters, model.flat_parameters)


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    _model([], seed=1).save(path)
    new = _model([], seed=2)
    new.save(str(path))
    np.testing.assert_array_equal(fn.load(str(path)).flat_parameters, new.flat_parameters)


# ---------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_keeps_the_best_model(tmp_path):
    X, y = _data(n=80, seed=1)
    Xv, yv = _data(n=30, seed=2)
    model = _model([], "float64", seed=5)
    ckpt = fn.ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss")
    hist = model.fit(X, y, loss="softmax_cross_entropy",
                     optimizer=optim.SGD(model.parameters(), lr=0.5, backend="vec"),
                     epochs=8, batch_size=8, validation_data=(Xv, yv), callbacks=[ckpt])
    val = hist.history["val_loss"]
    assert ckpt.best == min(val) and ckpt.best_epoch == int(np.argmin(val))
    best = fn.load(tmp_path / "best.npz")
    assert best.evaluate(Xv, yv)["loss"] == min(val)
    # a second fit that only gets worse (it ascends the loss) leaves the checkpoint alone
    before = (tmp_path / "best.npz").read_bytes()
    ascend = optim.SGD(model.parameters(), lr=0.5, maximize=True, backend="vec")
    hist = model.fit(X, y, optimizer=ascend, epochs=2, batch_size=8,
                     validation_data=(Xv, yv), callbacks=[ckpt])
    assert min(hist.history["val_loss"]) > min(val) and ckpt.best == min(val)
    assert (tmp_path / "best.npz").read_bytes() == before


def test_model_checkpoint_every_epoch_with_formatted_names(tmp_path):
    X, y = _data()
    model = _model([])
    ckpt = fn.ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{loss:.2f}.npz"),
                              save_best_only=False, include_optimizer=True)
    hist = model.fit(X, y, loss="softmax_cross_entropy", optimizer="sgd", epochs=3,
                     callbacks=[ckpt])
    names = sorted(os.listdir(tmp_path))
    assert names == [f"e{i + 1:02d}-{v:.2f}.npz" for i, v in enumerate(hist.history["loss"])]
    last = fn.load(tmp_path / names[-1])
    np.testing.assert_array_equal(last.flat_parameters, model.flat_parameters)
    assert last.optimizer.step_count == model.optimizer.step_count


def test_model_checkpoint_warns_without_the_monitored_value(tmp_path):
    X, y = _data()
    model = _model([])
    ckpt = fn.ModelCheckpoint(tmp_path / "m.npz", monitor="val_accuracy")
    assert ckpt.mode == "max"
    with pytest.warns(UserWarning, match="val_accuracy"):
        model.fit(X, y, loss="softmax_cross_entropy", epochs=2, callbacks=[ckpt])
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(ValueError, match="mode"):
        fn.ModelCheckpoint("x.npz", mode="best")
