"""One full training step and one full epoch on the bundled digits, in every form.

The network is Dense(64, h, relu) -> Dense(h, 10) with softmax cross-entropy and
plain SGD, through fastnn's public API (``loss_and_grad`` + ``SGD.step`` for a step,
``fit(epochs=1)`` for an epoch) with ``backend`` set to each form. Peers: the same
``nn.Sequential`` trained by ``torch.optim.SGD`` and, for the epoch, scikit-learn's
``MLPClassifier.partial_fit`` (one epoch of SGD, momentum off).
"""

import numpy as np
import pytest
from _common import FORMS, Size

import fastnn as fn

LR = 0.1
# (batch or samples, hidden units, batch size)
STEP_SIZES = [
    Size("batch=32 64-32-10", (32, 32)),
    Size("batch=256 64-128-10", (256, 128), loop=False),
]
EPOCH_SIZES = [
    Size("n=128 bs=32 64-32-10", (128, 32, 32)),
    Size("n=1797 bs=32 64-128-10", (1797, 128, 32), loop=False),
]
DTYPES = [np.float32, np.float64]


def _digits(n, dtype):
    X, y = fn.datasets.load_digits()
    return (X[:n] / 16.0).astype(dtype), y[:n].astype(np.int64)


def _fastnn(hidden, dtype, backend):
    model = fn.Sequential([fn.Dense(64, hidden, activation="relu"), fn.Dense(hidden, 10)],
                          seed=0, dtype=dtype, backend=backend)
    return model, fn.optim.SGD(model.parameters(), lr=LR, backend=backend)


def _torch_model(torch, hidden, dtype):
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    model.to(torch.float32 if dtype == np.float32 else torch.float64)
    return model, torch.optim.SGD(model.parameters(), lr=LR), nn.CrossEntropyLoss()


def _label(size, dtype):
    return Size(f"{size.label} {np.dtype(dtype).name}", size.shape, size.loop)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", STEP_SIZES, ids=[s.label for s in STEP_SIZES])
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_training_step(bench, request, form, size, dtype):
    bench.check(form, "training_step", _label(size, dtype))
    batch, hidden = size.shape
    X, y = _digits(batch, dtype)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        model, opt, crit = _torch_model(torch, hidden, dtype)
        tx, ty = torch.from_numpy(X), torch.from_numpy(y)

        def step():
            opt.zero_grad()
            loss = crit(model(tx), ty)
            loss.backward()
            opt.step()
            return loss.item()
    else:
        model, opt = _fastnn(hidden, dtype, form)

        def step():
            loss = model.loss_and_grad(X, y, "softmax_cross_entropy")
            opt.step(model.gradients())
            return loss

    first = step()
    loss = bench(form, "training_step", _label(size, dtype), step)
    assert np.isfinite(loss) and loss < first  # gradient descent went downhill


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", EPOCH_SIZES, ids=[s.label for s in EPOCH_SIZES])
@pytest.mark.parametrize("form", FORMS + ("torch", "sklearn"))
def test_training_epoch(bench, request, form, size, dtype):
    bench.check(form, "training_epoch", _label(size, dtype))
    n, hidden, batch_size = size.shape
    X, y = _digits(n, dtype)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        model, opt, crit = _torch_model(torch, hidden, dtype)
        tx, ty = torch.from_numpy(X), torch.from_numpy(y)
        gen = torch.Generator().manual_seed(0)

        def epoch():
            total = 0.0
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                opt.zero_grad()
                loss = crit(model(tx[idx]), ty[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            return total / n
    elif form == "sklearn":
        neural = pytest.importorskip("sklearn.neural_network")
        clf = neural.MLPClassifier(
            hidden_layer_sizes=(hidden,), activation="relu", solver="sgd",
            learning_rate_init=LR, momentum=0.0, nesterovs_momentum=False, alpha=0.0,
            batch_size=batch_size, shuffle=True, random_state=0)
        classes = np.arange(10)

        def epoch():
            clf.partial_fit(X, y, classes=classes)
            return clf.loss_
    else:
        model, opt = _fastnn(hidden, dtype, form)

        def epoch():
            history = model.fit(X, y, loss="softmax_cross_entropy", optimizer=opt,
                                epochs=1, batch_size=batch_size)
            return history.history["loss"][-1]

    first = epoch()
    loss = bench(form, "training_epoch", _label(size, dtype), epoch)
    assert np.isfinite(loss) and loss < first
