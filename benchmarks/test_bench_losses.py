"""Losses on the logits with their gradient dZ (the lecture's dZ = A - Y, over m).

The torch peer computes the loss and its gradient by autograd
(``F.cross_entropy``, ``F.binary_cross_entropy_with_logits``, ``F.mse_loss``), what
a PyTorch training step does.
"""

import numpy as np
import pytest
from _common import FORMS, Size, ids, random

from fastnn.kernels.losses import LOSS_KERNELS

# (m samples, k outputs)
SIZES = [
    Size("m=256 k=10", (256, 10)),
    Size("m=65536 k=10", (65536, 10), loop=False),
]


def _targets(name, shape):
    m, k = shape
    rng = np.random.default_rng(3)
    if name == "softmax_cross_entropy":
        return rng.integers(0, k, m).astype(np.int64)
    if name == "binary_cross_entropy":
        return rng.integers(0, 2, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def _torch_loss(torch, name):
    F = torch.nn.functional
    return {"softmax_cross_entropy": F.cross_entropy,
            "binary_cross_entropy": F.binary_cross_entropy_with_logits,
            "squared_error": F.mse_loss}[name]


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "binary_cross_entropy",
                                  "squared_error"])
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_loss_and_gradient(bench, request, form, name, size):
    z = random(size.shape, seed=1, low=-3, high=3)
    y = _targets(name, size.shape)
    grad = np.empty_like(z)
    # squared_error with scale 1/(m k) is mse
    extra = (1.0 / z.size,) if name == "squared_error" else ()
    if form == "torch":
        torch = request.getfixturevalue("torch")
        loss_fn = _torch_loss(torch, name)
        tz = torch.from_numpy(z.copy()).requires_grad_()
        ty = torch.from_numpy(y)

        def fn():
            tz.grad = None
            loss = loss_fn(tz, ty)
            loss.backward()
            return loss

        loss = float(bench(form, name, size, fn).detach())
        grad = tz.grad.numpy()
    else:
        kernel = LOSS_KERNELS[name][form]
        loss = bench(form, name, size, kernel, z, y, *extra, grad)
    ref_grad = np.empty_like(z)
    ref = LOSS_KERNELS[name]["vec"](z, y, *extra, ref_grad)
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-9)
