"""The progress display of ``Sequential.fit(verbose=...)``: a tqdm bar over epochs with
the latest loss and metrics when tqdm is installed, a plain text bar otherwise."""

import sys
import time

try:
    from tqdm import tqdm
except ImportError:  # tqdm is the optional extra ``progress``
    tqdm = None


def _format(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class EpochProgress:
    """Progress over ``epochs``: ``update(epoch, logs)`` after each epoch, ``close()``
    at the end.

    Parameters
    ----------
    epochs : int
    verbose : int
        0: nothing. 1: a progress bar (tqdm, or a text bar redrawn at most every
        0.2 s, on one line in a terminal). 2: one line per epoch.
    file : file, optional
        Default ``sys.stderr``, looked up when the display starts.
    """

    def __init__(self, epochs, verbose, file=None):
        self.epochs = epochs
        self.verbose = int(verbose)
        self.file = sys.stderr if file is None else file
        self._bar = None
        self._last = 0.0
        self._pending = self._drawn = None
        self._tty = bool(getattr(self.file, "isatty", lambda: False)())
        if self.verbose == 1 and tqdm is not None:
            self._bar = tqdm(total=epochs, unit="epoch", file=self.file, leave=True,
                             dynamic_ncols=True)

    def update(self, epoch, logs):
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(_format(logs), refresh=False)
            self._bar.update(1)
            return
        done = epoch + 1
        line = f"epoch {done}/{self.epochs} - {_format(logs)}"
        if self.verbose >= 2:
            print(line, file=self.file)
            return
        width = 20
        filled = width * done // self.epochs
        self._pending = f"[{'=' * filled}{'.' * (width - filled)}] {line}"
        now = time.perf_counter()
        if done < self.epochs and now - self._last < 0.2:
            return  # a text bar redrawn every epoch of a fast run would flood the output
        self._last = now
        self._draw()

    def _draw(self):
        if self._tty:
            print("\r" + self._pending, end="", file=self.file, flush=True)
        else:
            print(self._pending, file=self.file)
        self._drawn = self._pending

    def close(self):
        """Finish the display; a text bar shows the last epoch (early stop included)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.verbose == 1 and self._pending is not None:
            if self._drawn != self._pending:
                self._draw()
            if self._tty:
                print(file=self.file)
            self._pending = None
