"""Every optimizer's update step over a model-shaped set of parameters.

fastnn: ``opt.step(grads)`` of each ``fastnn.optim`` optimizer with ``backend`` set to
each form; the parameters tile one flat buffer, so a step is one fused kernel call
(plus the non-finite check the optimizers do by default). PyTorch peers, on the same
shapes: ``torch.optim`` on CPU with its default (the single-tensor for-loop path:
CPU is not a foreach device in torch 2.x), ``foreach=True`` and ``fused=True``
(where torch offers it; skipped where it does not). float32.
"""

import numpy as np
import pytest
from _common import FORMS, Size, ids, random

from fastnn import optim
from fastnn.params import ParamBuffer

LR = 1e-3
# name -> (fastnn kwargs, torch class, torch kwargs): the same update in both
CASES = {
    "sgd": ({"momentum": 0.9}, "SGD", {"momentum": 0.9}),
    # the lecture's momentum, v = beta v + (1 - beta) g, is torch's dampening = 1 - beta
    "momentum": ({"beta": 0.9}, "SGD", {"momentum": 0.9, "dampening": 0.1}),
    "adagrad": ({}, "Adagrad", {}),
    "rmsprop": ({}, "RMSprop", {}),
    "adadelta": ({}, "Adadelta", {}),
    "adam": ({}, "Adam", {}),
    "adamw": ({}, "AdamW", {}),
    "adamax": ({}, "Adamax", {}),
    "nadam": ({}, "NAdam", {}),
}
NAMES = [name for name in CASES if name in optim.OPTIMIZERS]
# the shapes of a Dense(n_in, h) -> Dense(h, 10) model
SIZES = [
    Size("64-32-10 (2.4k params)", [(32, 64), (32,), (10, 32), (10,)]),
    Size("784-256-10 (204k params)", [(256, 784), (256,), (10, 256), (10,)], loop=False),
]
TORCH_PATHS = {"torch": {}, "torch_foreach": {"foreach": True}, "torch_fused": {"fused": True}}


def _buffers(size):
    buf = ParamBuffer(size.shape, np.float32)
    buf.data[...] = random(buf.data.shape, seed=1)
    buf.grad[...] = random(buf.grad.shape, seed=2, low=-0.1, high=0.1)
    return buf


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", FORMS + tuple(TORCH_PATHS))
def test_optimizer_step(bench, request, form, name, size):
    bench.check(form, f"{name}_step", size)
    fastnn_kwargs, torch_name, torch_kwargs = CASES[name]
    buf = _buffers(size)
    start = buf.data.copy()
    if form in TORCH_PATHS:
        torch = request.getfixturevalue("torch")
        params = [torch.from_numpy(p.copy()).requires_grad_() for p in buf.params]
        for p, g in zip(params, buf.grads):
            p.grad = torch.from_numpy(g.copy())
        try:
            opt = getattr(torch.optim, torch_name)(params, lr=LR, **torch_kwargs,
                                                   **TORCH_PATHS[form])
            opt.step()
        except (RuntimeError, TypeError, ValueError) as exc:
            pytest.skip(f"torch.optim.{torch_name} has no {form} path: {exc}")
        bench(form, f"{name}_step", size, opt.step)
        end = np.concatenate([p.detach().numpy().ravel() for p in params])
    else:
        opt = optim.OPTIMIZERS[name](buf.params, lr=LR, backend=form, **fastnn_kwargs)
        bench(form, f"{name}_step", size, opt.step, buf.grads)
        end = buf.data
    # every step moves each weight against its (constant) gradient
    moved = end - start
    assert np.all(np.isfinite(end))
    assert np.mean(np.sign(moved) == -np.sign(buf.grad)) > 0.99
