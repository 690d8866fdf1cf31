"""Every activation A = g(Z) and its derivative dZ = dA * g'(Z), in every form.

The torch peer calls the same ATen kernels autograd uses (``sigmoid_backward``,
``threshold_backward``...), so it is the same equation without the graph overhead.
float32 only: the elementwise kernels are memory-bound and the dtype only scales them.
"""

import numpy as np
import pytest
from _common import FORMS, Size, ids, random

from fastnn.kernels.activations import ACTIVATIONS, CODES, DERIVATIVES

ALPHA = 0.01
SIZES = [
    Size("256x128", (256, 128)),
    Size("4096x1024", (4096, 1024), loop=False),
]
NAMES = list(CODES)


def _torch_forward(torch, name):
    F = torch.nn.functional
    return {
        "identity": lambda z, out: out.copy_(z),
        "sigmoid": lambda z, out: torch.sigmoid(z, out=out),
        "tanh": lambda z, out: torch.tanh(z, out=out),
        "relu": lambda z, out: torch.clamp(z, min=0, out=out),
        "leaky_relu": lambda z, out: F.leaky_relu(z, ALPHA),  # no out= in the public API
        "softmax": lambda z, out: torch.softmax(z, dim=1),
    }[name]


def _torch_backward(torch, name):
    aten = torch.ops.aten
    return {
        "identity": lambda a, da, z: da.clone(),
        "sigmoid": lambda a, da, z: aten.sigmoid_backward(da, a),
        "tanh": lambda a, da, z: aten.tanh_backward(da, a),
        "relu": lambda a, da, z: aten.threshold_backward(da, a, 0),
        "leaky_relu": lambda a, da, z: aten.leaky_relu_backward(da, z, ALPHA, False),
        "softmax": lambda a, da, z: aten._softmax_backward_data(da, a, 1, a.dtype),
    }[name]


def _activated(name, z):
    a = np.empty_like(z)
    ACTIVATIONS[name]["vec"](z, ALPHA, a)
    return a


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_activation_forward(bench, request, form, name, size):
    z = random(size.shape, seed=1, low=-4, high=4)
    out = np.empty_like(z)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        kernel = _torch_forward(torch, name)
        tz, tout = torch.from_numpy(z), torch.from_numpy(out)
        result = bench(form, f"{name}_forward", size, kernel, tz, tout)
        out = result.numpy() if result is not None else out
    else:
        bench(form, f"{name}_forward", size, ACTIVATIONS[name][form], z, ALPHA, out)
    np.testing.assert_allclose(out, _activated(name, z), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_activation_backward(bench, request, form, name, size):
    z = random(size.shape, seed=1, low=-4, high=4)
    a = _activated(name, z)
    da = random(size.shape, seed=2)
    out = np.empty_like(z)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        kernel = _torch_backward(torch, name)
        out = bench(form, f"{name}_backward", size, kernel, *(
            torch.from_numpy(v) for v in (a, da, z))).numpy()
    else:
        bench(form, f"{name}_backward", size, DERIVATIVES[name][form], a, da, ALPHA, out)
    ref = np.empty_like(z)
    DERIVATIVES[name]["vec"](a, da, ALPHA, ref)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
