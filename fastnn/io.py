"""Save and load models: one ``.npz`` file holding a JSON header and named arrays.

The file is an uncompressed NumPy ``.npz`` (a zip of ``.npy`` arrays, each with a
CRC-32) written without pickle and read with ``allow_pickle=False``, so loading a
file never runs code from it. Its arrays:

==========================  ===========================================================
array                       content
==========================  ===========================================================
``header``                  UTF-8 JSON (uint8 bytes): format name and version, fastnn
                            version, dtype, backend, seed, the layers as ``class`` +
                            ``config``, the loss, the training state (shuffling RNG,
                            step counter), the optimizer and schedule, user metadata
``params``                  the flat parameter buffer (``model.flat_parameters``)
``layers.<i>.<name>``       layer ``i``'s extra state (running statistics)
``optimizer.<k>``           the optimizer's state arrays, referenced from the header
``metadata.<k>``            arrays given in ``metadata`` (e.g. a feature scaler),
                            referenced from the header
==========================  ===========================================================

Layers are rebuilt from their class name through :data:`LAYERS`, an explicit
name -> class table, and optimizers and schedules through ``fastnn.optim.OPTIMIZERS``
and ``fastnn.schedules``; nothing named in a file is imported or evaluated. A file
is checked in full (format version, names, shapes, dtypes) before anything is built
or assigned, and every problem raises :class:`FastnnFormatError`, a ``ValueError``.
Writes go to a temporary file in the same folder, flushed to disk and renamed over
the target, so a crash leaves either the old file or the new one, never half of one.

Training resumed from a file saved with ``include_optimizer=True`` continues bit for
bit: the file holds the optimizer's state and step count (a schedule's position), the
model's step counter (dropout masks are drawn from the seed and the step) and the
state of the RNG that shuffles the batches. That needs an integer ``seed``: a model
built with ``seed=None`` draws fresh dropout masks after loading.
"""

import io as _bytes_io
import json
import math
import numbers
import os
import tempfile
import zipfile

import numpy as np

from . import optim as _optim
from ._config import BACKENDS
from .layers import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Identity,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .schedules import SCHEDULES

FORMAT_NAME = "fastnn.model"
#: Version of the file layout this fastnn writes; it reads this version and older.
FORMAT_VERSION = 1

#: The layer classes a file may name, by class name: the only ones load builds.
LAYERS = {cls.__name__: cls for cls in (Dense, Activation, Identity, Sigmoid, Tanh, ReLU,
                                        Softmax, LeakyReLU, Dropout, BatchNorm, LayerNorm)}
#: The schedule classes a file may name, by class name.
_SCHEDULES = {cls.__name__: cls for cls in SCHEDULES.values()}


class FastnnFormatError(ValueError):
    """A file that is not a fastnn model this version can read, or does not fit."""


# ------------------------------------------------------------------ helpers
def _fastnn_version():
    from . import __version__

    return __version__


def _json_scalar(value, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"cannot save {where}: {value} is not finite")
        return value
    raise ValueError(f"cannot save {where}: a {type(value).__name__} is neither an array, "
                     "a number nor a string")


def _pack(obj, arrays, prefix, where):
    """A JSON skeleton of ``obj`` (nested dicts/lists of arrays and scalars); arrays go
    into ``arrays`` as ``prefix<k>`` and are replaced by ``{"__array__": "prefix<k>"}``."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufU":
            raise ValueError(f"cannot save {where}: arrays of dtype {obj.dtype} are not "
                             "supported (numbers or strings only, never objects)")
        key = f"{prefix}{sum(k.startswith(prefix) for k in arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str) or k == "__array__":
                raise ValueError(f"cannot save {where}: key {k!r} is not a plain string")
            out[k] = _pack(v, arrays, prefix, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays, prefix, f"{where}[{i}]") for i, v in enumerate(obj)]
    return _json_scalar(obj, where)


def _unpack(obj, arrays, used, where):
    """Inverse of :func:`_pack`; records the array names it takes in ``used``."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            key = obj["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise FastnnFormatError(f"{where} refers to a missing array {key!r}")
            used.add(key)
            return arrays[key]
        return {k: _unpack(v, arrays, used, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays, used, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def _atomic_write(path, arrays):
    """``np.savez`` into a temporary file next to ``path``, fsync, then rename over it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as exc:  # name the target, not the temporary file
        raise OSError(exc.errno, f"cannot save to {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every platform can open a folder
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------- optimizer
def _config_of(obj, what):
    if not callable(getattr(obj, "get_config", None)):
        raise ValueError(f"cannot save {what}: it has no get_config() to rebuild it from")
    return dict(obj.get_config())


def _pack_schedule(lr, arrays):
    name = type(lr).__name__
    if _SCHEDULES.get(name) is not type(lr):
        raise ValueError(f"cannot save the optimizer: its learning rate is {lr!r}, which is "
                         "not a fastnn.schedules schedule; plain functions cannot be saved "
                         "(use a schedule class, or save without include_optimizer)")
    out = {"class": name, "config": _pack(_config_of(lr, f"schedule {name}"), arrays,
                                          "optimizer.", f"schedule {name} config")}
    # A schedule is a function of the optimizer's step_count, which the state holds;
    # one with a state of its own (a plateau counter, say) saves that too.
    if callable(getattr(lr, "state_dict", None)):
        out["state"] = _pack(lr.state_dict(), arrays, "optimizer.", f"schedule {name} state")
    return out


def _pack_optimizer(opt, model, arrays):
    name = type(opt).__name__
    key = next((k for k, cls in _optim.OPTIMIZERS.items() if cls is type(opt)), None)
    if key is None:
        raise ValueError(f"cannot save optimizer {name}: it is not one of fastnn.optim."
                         f"OPTIMIZERS ({sorted(_optim.OPTIMIZERS)})")
    mine = model.parameters()
    if len(opt.params) != len(mine) or any(
            a.shape != b.shape or not np.shares_memory(a, b)
            for a, b in zip(mine, opt.params)):
        raise ValueError("cannot save the optimizer: it does not hold this model's parameters")
    if not callable(getattr(opt, "state_dict", None)):
        raise ValueError(f"cannot save optimizer {name}: it has no state_dict()")
    config = _config_of(opt, f"optimizer {name}")
    lr = config.pop("lr", opt.lr)
    schedule = _pack_schedule(lr, arrays) if callable(lr) else None
    return {"name": key, "class": name, "backend": opt.backend,
            "lr": None if callable(lr) else _json_scalar(lr, "the learning rate"),
            "config": _pack(config, arrays, "optimizer.", f"optimizer {name} config"),
            "schedule": schedule,
            "state": _pack(opt.state_dict(), arrays, "optimizer.", f"optimizer {name} state")}


def _build_schedule(spec, arrays, used):
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise FastnnFormatError("the schedule entry of the header is malformed")
    cls = _SCHEDULES.get(spec["class"])
    if cls is None:
        raise FastnnFormatError(f"the file's schedule {spec['class']!r} is not one of this "
                                f"fastnn's schedules ({sorted(_SCHEDULES)})")
    config = _unpack(spec.get("config", {}), arrays, used, "schedule config")
    try:
        schedule = cls(**config)
        if "state" in spec:
            schedule.load_state_dict(_unpack(spec["state"], arrays, used, "schedule state"))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise FastnnFormatError(f"the file's schedule {spec['class']} cannot be rebuilt: "
                                f"{exc}") from None
    return schedule


def _build_optimizer(spec, model, arrays, used):
    """A new optimizer over ``model``'s parameters with the saved state; raises
    FastnnFormatError when anything does not fit."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise FastnnFormatError("the optimizer entry of the header is malformed")
    name = spec["name"]
    cls = _optim.OPTIMIZERS.get(name)
    if cls is None:
        raise FastnnFormatError(f"the file's optimizer {name!r} is not one of this fastnn's "
                                f"optimizers ({sorted(_optim.OPTIMIZERS)})")
    config = _unpack(spec.get("config", {}), arrays, used, "optimizer config")
    state = _unpack(spec.get("state"), arrays, used, "optimizer state")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise FastnnFormatError("the optimizer entry of the header is malformed")
    for key in ("step_count", "skipped_steps"):
        value = state.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FastnnFormatError(f"the optimizer's {key} {value!r} is not a non-negative "
                                    "integer")
    # the state arrays must be the model's dtype: load_state_dict would cast silently
    for key, arr in (state.get("state") or {}).items():
        if not isinstance(arr, np.ndarray) or arr.dtype != model.dtype:
            raise FastnnFormatError(f"the optimizer state {key!r} is not a {model.dtype.name} "
                                    "array")
        if not np.all(np.isfinite(arr)):
            raise FastnnFormatError(f"the optimizer state {key!r} contains NaN or inf")
    # the backend matters for bit-for-bit resumption: the loop/jit forms of a kernel
    # compute in float64, the vec form in the parameters' dtype
    backend = spec.get("backend", model.backend)
    if backend not in BACKENDS:
        raise FastnnFormatError(f"the optimizer's backend {backend!r} is not one of {BACKENDS}")
    if spec.get("schedule") is not None:
        lr = _build_schedule(spec["schedule"], arrays, used)
    else:
        lr = spec.get("lr")
    try:
        opt = cls(model.parameters(), lr=lr, backend=backend, **config)
        opt.load_state_dict(state)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise FastnnFormatError(f"the file's optimizer {spec.get('class', name)} does not "
                                f"fit this model: {exc}") from None
    return opt


# --------------------------------------------------------------------- save
def save(model, path, include_optimizer=False, optimizer=None, metadata=None):
    """Save ``model`` to ``path`` (an ``.npz`` file), atomically.

    Parameters
    ----------
    model : Sequential
    path : str or path-like
        Written exactly as given (no suffix is added); an existing file is replaced
        only once the new one is complete on disk.
    include_optimizer : bool
        Also save the optimizer (``optimizer``, else the one of the model's last
        ``fit``): its class, hyperparameters, state arrays, step count and learning
        rate schedule, so that training resumes bit for bit.
    optimizer : Optimizer, optional
        The optimizer to save with ``include_optimizer``.
    metadata : dict, optional
        Saved alongside and returned by :func:`load` as ``model.metadata``: a dict of
        str -> JSON values (numbers, strings, lists, dicts) or NumPy arrays of numbers
        or strings. Default: the model's ``metadata`` attribute, if any.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    ValueError
        For a layer, optimizer or schedule that cannot be saved faithfully (nothing is
        silently dropped); the file is then left as it was.
    """
    arrays = {}
    layers = []
    for i, layer in enumerate(model.layers):
        name = type(layer).__name__
        if LAYERS.get(name) is not type(layer):
            raise ValueError(f"cannot save layers[{i}]: {name} is not one of the layers "
                             f"fastnn can load ({sorted(LAYERS)})")
        cfg = layer.config()
        try:
            rebuilt = type(layer)(**cfg).config()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cannot save layers[{i}] ({layer!r}): its config() does not "
                             f"rebuild it ({exc})") from None
        if rebuilt != cfg:
            raise ValueError(f"cannot save layers[{i}] ({layer!r}): its config() does not "
                             "rebuild it")
        extra = layer.extra_state()
        for k, v in extra.items():
            arrays[f"layers.{i}.{k}"] = np.asarray(v)
        stray = {}
        packed = _pack(cfg, stray, "", f"layers[{i}] config")
        if stray:
            raise ValueError(f"cannot save layers[{i}] ({layer!r}): its config() holds arrays")
        layers.append({"class": name, "config": packed, "extra_state": sorted(extra)})
    # load refuses non-finite parameters, so save does too: a file must load back
    if not np.all(np.isfinite(model.flat_parameters)):
        raise ValueError("cannot save: the parameters contain NaN or inf (training diverged?)")
    arrays["params"] = model.flat_parameters
    seed = model.seed if isinstance(model.seed, numbers.Integral) else None
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastnn_version": _fastnn_version(),
        "dtype": model.dtype.name,
        "backend": model.backend,
        "seed": None if seed is None else int(seed),
        "layers": layers,
        "n_parameters": int(model.n_parameters),
        "loss": None if model.loss is None else model.loss.name,
        "training_state": {"shuffle_rng": model._shuffle_rng.bit_generator.state,
                           "step": int(getattr(model, "step", 0))},
        "optimizer": None,
        "metadata": None,
    }
    if include_optimizer:
        opt = optimizer if optimizer is not None else getattr(model, "optimizer", None)
        if opt is None:
            raise ValueError("include_optimizer=True but there is no optimizer: pass "
                             "optimizer=..., or train with fit first")
        header["optimizer"] = _pack_optimizer(opt, model, arrays)
    elif optimizer is not None:
        raise ValueError("optimizer was given without include_optimizer=True")
    if metadata is None:
        metadata = getattr(model, "metadata", None)
    if metadata:
        if not isinstance(metadata, dict):
            raise ValueError(f"metadata is {type(metadata).__name__}; expected a dict")
        header["metadata"] = _pack(metadata, arrays, "metadata.", "metadata")
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save: the header is not JSON ({exc})") from None
    arrays["header"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _atomic_write(path, arrays)
    return os.fspath(path)


# --------------------------------------------------------------------- load
def _read(path):
    """``(header, arrays)`` from a file, every array read (so every CRC checked)."""
    with open(path, "rb") as f:  # OSError (a missing file, say) passes through as is
        blob = f.read()
    where = os.fspath(path)
    if not blob:
        raise FastnnFormatError(f"{where} is empty, not a fastnn model")
    if blob[:1] == b"\x80":  # the opcode that starts every pickle since protocol 2
        raise FastnnFormatError(f"{where} is a pickle, which fastnn never loads")
    if not blob.startswith(b"PK\x03\x04"):
        raise FastnnFormatError(f"{where} is not a fastnn model: it is not an .npz archive")
    try:
        with np.load(_bytes_io.BytesIO(blob), allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise FastnnFormatError(f"{where} holds a single array, not a fastnn model")
            arrays = {k: data[k] for k in data.files}
    except FastnnFormatError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError, TypeError,
            NotImplementedError) as exc:
        if "pickle" in str(exc):
            reason = "it contains pickled data, which fastnn never loads"
        else:
            reason = f"it is truncated or corrupted ({type(exc).__name__}: {exc})"
        raise FastnnFormatError(f"{where} is not a readable fastnn model: {reason}") from None
    if "header" not in arrays:
        raise FastnnFormatError(f"{where} is not a fastnn model: it has no header")
    raw = arrays.pop("header")
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("the header is not a byte array")
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FastnnFormatError(f"{where} has a corrupted header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise FastnnFormatError(f"{where} is not a fastnn model file")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FastnnFormatError(f"{where} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise FastnnFormatError(
            f"{where} was written by fastnn {header.get('fastnn_version', '?')} in format "
            f"version {version}; this fastnn ({_fastnn_version()}) reads up to version "
            f"{FORMAT_VERSION}: upgrade fastnn")
    for key, kind in (("dtype", str), ("backend", str), ("layers", list),
                      ("n_parameters", int), ("training_state", dict)):
        if not isinstance(header.get(key), kind):
            raise FastnnFormatError(f"{where} has a malformed header: {key!r} is missing or "
                                    f"not a {kind.__name__}")
    return header, arrays


def _build(header, arrays, where):
    """A new Sequential from the header's architecture (its weights are not loaded yet)."""
    from .model import Sequential

    if header["dtype"] not in ("float32", "float64"):
        raise FastnnFormatError(f"{where}: dtype {header['dtype']!r} is not float32/float64")
    if header["backend"] not in BACKENDS:
        raise FastnnFormatError(f"{where}: backend {header['backend']!r} is not one of "
                                f"{BACKENDS}")
    layers = []
    for i, spec in enumerate(header["layers"]):
        if (not isinstance(spec, dict) or not isinstance(spec.get("class"), str)
                or not isinstance(spec.get("config"), dict)
                or not isinstance(spec.get("extra_state", []), list)):
            raise FastnnFormatError(f"{where}: layers[{i}] of the header is malformed")
        cls = LAYERS.get(spec["class"])
        if cls is None:
            raise FastnnFormatError(f"{where}: layers[{i}] is a {spec['class']!r}, which this "
                                    f"fastnn does not have ({sorted(LAYERS)})")
        try:
            layers.append(cls(**spec["config"]))
        except (TypeError, ValueError) as exc:
            raise FastnnFormatError(f"{where}: layers[{i}] ({spec['class']}) cannot be built "
                                    f"from its config: {exc}") from None
    if not layers:
        raise FastnnFormatError(f"{where}: the header lists no layers")
    seed = header.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise FastnnFormatError(f"{where}: seed {seed!r} is not a non-negative integer")
    # Count the parameters before Sequential allocates them: a tampered config (a Dense
    # of 10^6 x 10^6, say) must be refused, not fill the memory.
    params = arrays.get("params")
    width, total = None, 0
    try:
        for i, layer in enumerate(layers):
            width = layer.build(width, header["dtype"], header["backend"])
            total += sum(math.prod(shape) for _, shape, _ in layer.param_specs())
    except ValueError as exc:
        raise FastnnFormatError(f"{where}: the saved layers do not fit together: layers[{i}]: "
                                f"{exc}") from None
    except MemoryError:
        raise FastnnFormatError(f"{where}: layers[{i}] is too large to build") from None
    if not isinstance(params, np.ndarray) or params.size != total:
        size = params.size if isinstance(params, np.ndarray) else "no"
        raise FastnnFormatError(f"{where}: the layers have {total} parameters but the file "
                                f"holds {size} parameter values")
    try:
        return Sequential(layers, seed=seed, dtype=header["dtype"], backend=header["backend"])
    except ValueError as exc:
        raise FastnnFormatError(f"{where}: the saved layers do not fit together: {exc}") from None


def _check_array(arr, shape, name, where):
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f" or arr.shape != tuple(shape):
        got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else "nothing"
        raise FastnnFormatError(f"{where}: array {name!r} is {got}; the architecture needs "
                                f"floats of shape {tuple(shape)}")


def _restore(model, header, arrays, where):
    """Check every array against ``model`` (new, built from the same header), then
    assign them all. Nothing is assigned unless everything fits."""
    used = {"params"}
    if "params" not in arrays:
        raise FastnnFormatError(f"{where}: the parameter array is missing")
    if header["n_parameters"] != model.n_parameters:
        raise FastnnFormatError(f"{where}: the header counts {header['n_parameters']} "
                                f"parameters but its layers have {model.n_parameters}")
    _check_array(arrays["params"], (model.n_parameters,), "params", where)
    if arrays["params"].dtype != model.dtype:
        raise FastnnFormatError(f"{where}: parameters are {arrays['params'].dtype} but the "
                                f"header says {model.dtype.name}")
    if not np.all(np.isfinite(arrays["params"])):
        raise FastnnFormatError(f"{where}: the parameters contain NaN or inf")
    extras = []
    for i, (layer, spec) in enumerate(zip(model.layers, header["layers"])):
        expected = layer.extra_state()
        if sorted(spec.get("extra_state", [])) != sorted(expected):
            raise FastnnFormatError(f"{where}: layers[{i}] saved state "
                                    f"{sorted(spec.get('extra_state', []))} but "
                                    f"{type(layer).__name__} has {sorted(expected)}")
        values = {}
        for k, live in expected.items():
            name = f"layers.{i}.{k}"
            _check_array(arrays.get(name), np.shape(live), name, where)
            if arrays[name].dtype != np.asarray(live).dtype:
                raise FastnnFormatError(f"{where}: array {name!r} is {arrays[name].dtype}; "
                                        f"the layer keeps {np.asarray(live).dtype}")
            values[k] = arrays[name]
            used.add(name)
        extras.append(values)
    ts = header["training_state"]
    rng_state = ts.get("shuffle_rng")
    step = ts.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise FastnnFormatError(f"{where}: the training step {step!r} is invalid")
    try:
        probe = type(model._shuffle_rng.bit_generator)()
        probe.state = rng_state
    except (TypeError, ValueError, KeyError) as exc:
        raise FastnnFormatError(f"{where}: the shuffling RNG state is invalid ({exc})") from None
    loss = header.get("loss")
    if loss is not None:
        try:
            model._set_loss(loss)
        except ValueError as exc:
            raise FastnnFormatError(f"{where}: {exc}") from None
    opt = None
    if header.get("optimizer") is not None:
        opt = _build_optimizer(header["optimizer"], model, arrays, used)
    meta = header.get("metadata") or {}
    if not isinstance(meta, dict):
        raise FastnnFormatError(f"{where}: the metadata is not a dict")
    meta = _unpack(meta, arrays, used, "metadata")
    unknown = sorted(set(arrays) - used)
    if unknown:
        raise FastnnFormatError(f"{where}: arrays {unknown} are not part of the model")
    # ------- everything fits: assign (the optimizer already holds its state)
    model.flat_parameters[...] = arrays["params"]
    for layer, values in zip(model.layers, extras):
        if values:
            layer.load_extra_state(values)
    model._shuffle_rng.bit_generator.state = rng_state
    model.step = step
    model.optimizer = opt
    model.metadata = meta
    return model


def _load_new(path):
    """A new model from ``path``, every error a FastnnFormatError naming the file."""
    where = os.fspath(path)
    header, arrays = _read(path)
    try:
        return _restore(_build(header, arrays, where), header, arrays, where)
    except RecursionError:  # a header nested thousands deep
        raise FastnnFormatError(f"{where} has a malformed header (nested too deep)") from None
    except FastnnFormatError as exc:
        if str(exc).startswith(where):
            raise
        raise FastnnFormatError(f"{where}: {exc}") from None


def load(path):
    """The model saved at ``path`` by :func:`save`, in evaluation mode.

    Its ``loss`` is set when one was saved (so ``predict`` works), its ``optimizer``
    holds the saved optimizer state when the file has one (so ``fit`` resumes), and
    ``metadata`` holds what ``save`` was given.

    Raises
    ------
    FastnnFormatError (a ValueError)
        The file is not a fastnn model, is truncated or corrupted, holds pickled data,
        comes from a newer format version, or its arrays do not fit its architecture.
    OSError
        The file cannot be opened.
    """
    return _load_new(path)


def load_weights(model, path):
    """Load the parameters and running statistics saved at ``path`` into ``model``.

    The file's layers must have the same classes and parameter shapes as ``model``'s;
    the parameters are cast to ``model``'s dtype. Everything is checked first: when
    the file is unreadable or does not fit, the error is raised and ``model`` is
    unchanged. Returns ``model``.
    """
    where = os.fspath(path)
    saved = _load_new(path)
    mine = [type(layer).__name__ for layer in model.layers]
    theirs = [type(layer).__name__ for layer in saved.layers]
    if mine != theirs:
        raise FastnnFormatError(f"{where} holds layers {theirs}; this model has {mine}")
    for i, (a, b) in enumerate(zip(model.parameters(), saved.parameters())):
        if a.shape != b.shape:
            raise FastnnFormatError(f"{where}: parameter {i} has shape {b.shape}; this "
                                    f"model's has {a.shape}")
    extras = []
    for i, (a, b) in enumerate(zip(model.layers, saved.layers)):
        sa, sb = a.extra_state(), b.extra_state()
        if {k: np.shape(v) for k, v in sa.items()} != {k: np.shape(v) for k, v in sb.items()}:
            raise FastnnFormatError(f"{where}: layers[{i}] state does not fit this model")
        extras.append({k: np.array(v, dtype=np.asarray(sa[k]).dtype) for k, v in sb.items()})
    model.flat_parameters[...] = saved.flat_parameters
    for layer, values in zip(model.layers, extras):
        if values:
            layer.load_extra_state(values)
    return model
