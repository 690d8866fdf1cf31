"""fit(verbose=...): a progress bar (tqdm or the plain fallback), nothing when quiet."""

import io

import numpy as np
import pytest

import fastnn as fn
from fastnn import _progress


def _fit(verbose, epochs=3):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    model = fn.Sequential([fn.Dense(3, 4, "relu"), fn.Dense(4, 2)], seed=0)
    return model.fit(X, y, loss="softmax_cross_entropy", epochs=epochs, batch_size=8,
                     verbose=verbose)


def test_quiet_prints_nothing(capsys):
    _fit(verbose=0)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("with_tqdm", [True, False])
def test_bar_shows_epochs_loss_and_metrics(capsys, monkeypatch, with_tqdm):
    if with_tqdm:
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setattr(_progress, "tqdm", None)
    history = _fit(verbose=1, epochs=4)
    out, err = capsys.readouterr()
    assert out == ""
    assert "4/4" in err
    last_loss = f"{history.history['loss'][-1]:.4f}"
    assert f"loss: {last_loss}" in err or f"loss={last_loss}" in err
    assert "accuracy" in err


def test_verbose_2_one_line_per_epoch(capsys):
    _fit(verbose=2, epochs=3)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]


def test_fallback_throttles_and_ends_on_the_last_epoch_after_an_early_stop(monkeypatch):
    monkeypatch.setattr(_progress, "tqdm", None)
    buf = io.StringIO()
    bar = _progress.EpochProgress(1000, 1, file=buf)
    for epoch in range(7):  # stopped early after 7 fast epochs
        bar.update(epoch, {"loss": 1.0 / (epoch + 1)})
    bar.close()
    lines = buf.getvalue().strip().splitlines()
    assert len(lines) == 2  # the first epoch, then the last one on close; not all seven
    assert lines[-1].startswith("[....................] epoch 7/1000 - loss: 0.1429")
