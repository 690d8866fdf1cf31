"""Inverted dropout, forward A = D * Z / (1 - rate) and backward dZ = D * dA / (1 - rate).

fastnn draws the mask D from a counter-based generator (a hash of key, step and
element index, ``fastnn.kernels.random``) and stores it as uint8 for the backward pass. The torch peer is
``F.dropout`` forward and ATen's ``native_dropout_backward`` (what autograd runs).
float32, rate 0.5.
"""

import numpy as np
import pytest
from _common import FORMS, Size, ids, random

from fastnn.kernels.dropout import DROPOUT_BACKWARD, DROPOUT_FORWARD
from fastnn.kernels.random import keep_threshold

RATE = 0.5
SCALE = 1.0 / (1.0 - RATE)
KEY = np.uint64(0x9E3779B97F4A7C15)
SIZES = [
    Size("64x256", (64, 256)),
    Size("1024x4096", (1024, 4096), loop=False),
]


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_dropout_forward(bench, request, form, size):
    bench.check(form, "dropout_forward", size)
    x = random(size.shape, seed=1)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        F = torch.nn.functional
        tx = torch.from_numpy(x)
        out = bench(form, "dropout_forward", size, F.dropout, tx, RATE, True).numpy()
        kept = out != 0
    else:
        out = np.empty_like(x)
        mask = np.empty(x.shape, np.uint8)
        bench(form, "dropout_forward", size, DROPOUT_FORWARD[form],
              x, KEY, np.uint64(7), keep_threshold(RATE), SCALE, mask, out)
        kept = mask.astype(bool)
        ref_mask = np.empty_like(mask)
        DROPOUT_FORWARD["vec"](x, KEY, np.uint64(7), keep_threshold(RATE), SCALE, ref_mask,
                               np.empty_like(x))
        np.testing.assert_array_equal(mask, ref_mask)  # same mask in every form
    np.testing.assert_allclose(out[kept], x[kept] * SCALE, rtol=1e-6)
    assert np.all(out[~kept] == 0)
    assert abs(kept.mean() - (1 - RATE)) < 5 / np.sqrt(x.size)


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_dropout_backward(bench, request, form, size):
    bench.check(form, "dropout_backward", size)
    dy = random(size.shape, seed=2)
    mask = (random(size.shape, seed=3, low=0, high=1) >= RATE).astype(np.uint8)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        backward = torch.ops.aten.native_dropout_backward
        dx = bench(form, "dropout_backward", size, backward, torch.from_numpy(dy),
                   torch.from_numpy(mask.astype(bool)), SCALE).numpy()
    else:
        dx = np.empty_like(dy)
        bench(form, "dropout_backward", size, DROPOUT_BACKWARD[form], dy, mask, SCALE, dx)
    np.testing.assert_allclose(dx, dy * mask * SCALE, rtol=1e-6)
