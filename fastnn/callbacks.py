"""Training callbacks with Keras's names and hooks.

``fit`` calls, on every callback in order: ``set_model(model)``,
``on_train_begin(logs)``, then per epoch ``on_epoch_begin(epoch, logs)`` and
``on_epoch_end(epoch, logs)`` (``logs`` holds ``loss``, ``accuracy`` and their
``val_`` twins), and ``on_train_end(logs)``. A callback stops training by setting
``model.stop_training = True``.
"""


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
