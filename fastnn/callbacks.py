"""Training callbacks with Keras's names and hooks.

``fit`` calls, on every callback in order: ``set_model(model)``,
``on_train_begin(logs)``, then per epoch ``on_epoch_begin(epoch, logs)`` and
``on_epoch_end(epoch, logs)`` (``logs`` holds ``loss``, ``accuracy`` and their
``val_`` twins), and ``on_train_end(logs)``. A callback stops training by setting
``model.stop_training = True``.
"""

import math
import os
import sys
import warnings


class Callback:
    """Base class: every hook does nothing."""

    def __init__(self):
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass


class History(Callback):
    """What ``fit`` returns: ``history.history[name]`` is the list of per-epoch values,
    ``history.epoch`` the epoch numbers (from 0)."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self.stopped_reason = None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self):
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


class _Monitored(Callback):
    """A callback that watches one logged value (``monitor``): which way is better
    (``mode``), the best value so far and what counts as an improvement."""

    def __init__(self, monitor, mode, min_delta=0.0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode={mode!r}: expected 'auto', 'min' or 'max'")
        if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta)):
            raise ValueError(f"min_delta={min_delta!r}: expected a finite number")
        if mode == "auto":
            name = monitor[4:] if monitor.startswith("val_") else monitor
            if name == "loss":
                mode = "min"
            elif name in ("accuracy", "acc"):
                mode = "max"
            else:
                raise ValueError(f"{type(self).__name__} cannot tell whether {monitor!r} "
                                 "should go down or up: pass mode='min' or mode='max'")
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self._warned = False

    def _worst(self):
        return math.inf if self.mode == "min" else -math.inf

    def _is_improvement(self, value, reference):
        """Better than ``reference`` by more than ``min_delta`` (NaN never is)."""
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def _current(self, logs, consequence):
        """The monitored value in ``logs``, or None with a warning (once) saying so."""
        value = (logs or {}).get(self.monitor)
        if value is None and not self._warned:
            warnings.warn(f"{type(self).__name__}: {self.monitor!r} is not among the logged "
                          f"values {sorted(logs or {})}; {consequence} (give fit validation "
                          "data, or monitor='loss')", stacklevel=3)
            self._warned = True
        return value


class ModelCheckpoint(_Monitored):
    """Save the model during ``fit``: the best one so far by ``monitor``, or every epoch.

    Each save is atomic (see :func:`fastnn.io.save`): a crash mid-save leaves the
    previous checkpoint in place.

    Parameters
    ----------
    filepath : str or path-like
        Where to save; may hold ``str.format`` fields naming the epoch (from 1) and the
        epoch's logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.
    monitor : str
        The logged quantity that decides what is best (``'val_loss'``, ``'loss'``,
        ``'val_accuracy'``...).
    verbose : int
        1: one line on stderr per save.
    save_best_only : bool
        Save only when ``monitor`` improves on the best value so far. Default True
        (Keras defaults to False): a checkpoint is the best model, as the name promises.
    mode : {'auto', 'min', 'max'}
        Whether lower or higher is better; ``'auto'`` takes higher for accuracies.
    include_optimizer : bool
        Also save the optimizer state, to resume training from the checkpoint.

    Attributes
    ----------
    best : float
        The best ``monitor`` value seen (inf or -inf before the first).
    best_epoch : int or None
        The epoch (from 0) of the last save.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=True,
                 mode="auto", include_optimizer=False):
        super().__init__(monitor, mode)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.include_optimizer = include_optimizer
        # Kept across fit calls, as Keras does: a second fit (resumed training, say)
        # replaces the checkpoint only with a better model.
        self.best = self._worst()
        self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = self._current(logs, "nothing is saved")
            if value is None or not self._is_improvement(value, self.best):
                return
            self.best = float(value)
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path, include_optimizer=self.include_optimizer)
        self.best_epoch = epoch
        if self.verbose:
            where = f"{self.monitor}={self.best:.4f}, " if self.save_best_only else ""
            print(f"epoch {epoch + 1}: {where}saved {path}", file=sys.stderr)


class EarlyStopping(_Monitored):
    """Stop ``fit`` when a monitored quantity has stopped improving (Keras's semantics).

    At the end of each epoch from ``start_from_epoch`` on, the value of ``monitor`` is
    an improvement when it beats the best so far by more than ``min_delta``
    (``current + min_delta < best`` in min mode, ``current - min_delta > best`` in max
    mode; NaN never improves). ``wait`` counts the epochs since the last improvement; training stops at the
    end of an epoch (never the first) when ``wait >= patience``: ``patience=0`` stops at
    the first epoch that does not improve. With a ``baseline``, an improvement resets
    ``wait`` only if it also beats the baseline, so a model that never beats it stops
    after ``patience`` epochs. The lecture's rule: stop where the validation curve
    stops improving, though the training curve still does.

    Parameters
    ----------
    monitor : str
        A key of the epoch's logs: ``'val_loss'``, ``'loss'``, ``'val_accuracy'``...
        A missing key warns and the epoch is not counted.
    min_delta : float
        The smallest change that counts as an improvement (its sign is ignored).
    patience : int
        Epochs without improvement to wait before stopping.
    mode : {'auto', 'min', 'max'}
        ``'auto'``: lower is better for losses, higher for accuracies; other names
        need an explicit mode.
    baseline : float, optional
        A value the monitored quantity must beat.
    restore_best_weights : bool
        At the end of training, set the weights and running statistics back to those
        of the best epoch (copies taken at each improvement). As in Keras 3, this
        happens whenever training ends, whether or not patience ran out, and even if
        no epoch beat the baseline (then the best epoch seen is restored).
    start_from_epoch : int
        Epochs of warm-up before monitoring starts.
    verbose : int
        1: a line on stderr when stopping and when restoring.

    Attributes
    ----------
    best : float
        The best monitored value seen.
    best_epoch : int
        Its epoch (from 0).
    stopped_epoch : int
        The epoch at which this callback stopped training, 0 if it did not.
    wait : int
    best_weights : list of ndarray or None
        ``model.get_weights()`` at the best epoch (kept with ``restore_best_weights``).
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, mode="auto",
                 restore_best_weights=False, start_from_epoch=0, baseline=None, verbose=0):
        super().__init__(monitor, mode, min_delta)
        for name, value in (("patience", patience), ("start_from_epoch", start_from_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r}: expected an integer >= 0")
        self.patience = patience
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._worst()
        self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self._reset()  # an instance can be reused across fits

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs, "training goes on")
        if current is None:
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # the first epoch is the best yet
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = float(current)
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"epoch {self.stopped_epoch + 1}: early stopping", file=sys.stderr)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"restoring the weights of the best epoch, {self.best_epoch + 1}",
                      file=sys.stderr)
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(_Monitored):
    """Multiply the optimizer's learning rate by ``factor`` when ``monitor`` has not
    improved for ``patience`` epochs (Keras's ``ReduceLROnPlateau``).

    Acts on the float ``lr`` of the optimizer ``fit`` trains with; a schedule already
    decides the learning rate, so combining one with this callback raises ValueError.

    Parameters
    ----------
    monitor : str
        The logged value to watch, ``'val_loss'`` by default (give ``fit`` validation
        data); a missing value warns and changes nothing.
    factor : float in (0, 1)
        ``new_lr = max(lr * factor, min_lr)``.
    patience : int
        Epochs without improvement before reducing.
    verbose : int
        1: one line on stderr per reduction.
    mode : {'auto', 'min', 'max'}
        Whether lower or higher is better; ``'auto'`` takes higher for accuracies.
    min_delta : float
        An improvement must beat the best value by more than this.
    cooldown : int
        Epochs to wait after a reduction before counting again.
    min_lr : float
        Lower bound on the learning rate.

    Attributes
    ----------
    best : float
    wait : int
        Epochs since the last improvement.
    reductions : list of (epoch, new_lr)
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        if not (isinstance(factor, (int, float)) and 0.0 < factor < 1.0):
            raise ValueError(f"factor={factor!r}: expected a number in (0, 1)")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r}: expected an integer >= 0")
        for name, value in (("min_delta", min_delta), ("min_lr", min_lr)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r}: expected a finite number >= 0")
        self.factor = float(factor)
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = float(min_lr)
        self._reset()

    def _reset(self):
        self.best = self._worst()
        self.wait = 0
        self.cooldown_counter = 0
        self.reductions = []

    def on_train_begin(self, logs=None):
        opt = getattr(self.model, "optimizer", None)
        if opt is None or callable(opt.lr):
            raise ValueError(f"ReduceLROnPlateau needs an optimizer with a float lr; got "
                             f"{getattr(opt, 'lr', None)!r} (a schedule already sets the lr)")
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs, "the lr is left alone")
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(value, self.best):
            self.best = float(value)
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                opt = self.model.optimizer
                if opt.lr > self.min_lr:
                    opt.lr = max(opt.lr * self.factor, self.min_lr)
                    self.reductions.append((epoch, opt.lr))
                    if self.verbose:
                        print(f"epoch {epoch + 1}: ReduceLROnPlateau reduced the learning "
                              f"rate to {opt.lr:.3g}", file=sys.stderr)
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
