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


class ModelCheckpoint(Callback):
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
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode={mode!r}: expected 'auto', 'min' or 'max'")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.mode = mode
        self.include_optimizer = include_optimizer
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = None
        self._warned = False

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                if not self._warned:
                    warnings.warn(f"ModelCheckpoint: {self.monitor!r} is not among the logged "
                                  f"values {sorted(logs)}; nothing is saved (give fit "
                                  "validation data, or monitor='loss')", stacklevel=2)
                    self._warned = True
                return
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:  # NaN is never better
                return
            self.best = float(value)
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path, include_optimizer=self.include_optimizer)
        self.best_epoch = epoch
        if self.verbose:
            where = f"{self.monitor}={self.best:.4f}, " if self.save_best_only else ""
            print(f"epoch {epoch + 1}: {where}saved {path}", file=sys.stderr)
