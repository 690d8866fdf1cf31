"""The logistic-regression gradient of the lecture, in its three forms.

``loop``: the lecture's per-sample loop (J, dw, db accumulated over the m samples,
then / m); ``vec``: Z = w^T X + b, A = sigma(Z), dZ = A - Y, dW = X dZ^T / m;
``jit``: the loop compiled. Samples are columns, X is (n_x, m), as in the lecture.
``torch`` computes the same gradient by autograd on
``F.binary_cross_entropy_with_logits(w^T X + b, Y)``.
"""

import numpy as np
import pytest
from _common import FORMS, Size, ids

from fastnn import lesson

# (n_x features, m samples)
SIZES = [
    Size("n_x=20 m=1000", (20, 1000)),
    Size("n_x=100 m=100000", (100, 100_000), loop=False),
]
KERNELS = {"loop": lesson.logreg_grad_loop, "vec": lesson.logreg_grad_vec,
           "jit": lesson.logreg_grad_jit}


@pytest.mark.parametrize("size", SIZES, ids=ids(SIZES))
@pytest.mark.parametrize("form", FORMS + ("torch",))
def test_logreg_gradient(bench, request, form, size):
    bench.check(form, "logreg_gradient", size)
    n_x, m = size.shape
    X, Y = lesson.lecture_data(m, n_x, seed=0)
    w = np.random.default_rng(1).standard_normal(n_x) * 0.1
    b = 0.1
    dw = np.empty(n_x)
    if form == "torch":
        torch = request.getfixturevalue("torch")
        F = torch.nn.functional
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
        tw = torch.from_numpy(w.copy()).requires_grad_()
        tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)

        def fn():
            tw.grad = tb.grad = None
            J = F.binary_cross_entropy_with_logits(tw @ tX + tb, tY)
            J.backward()
            return J.item(), tb.grad.item()

        J, db = bench(form, "logreg_gradient", size, fn)
        dw = tw.grad.numpy()
    else:
        J, db = bench(form, "logreg_gradient", size, KERNELS[form], X, Y, w, b, dw)
    ref_dw = np.empty(n_x)
    ref_J, ref_db = lesson.logreg_grad_vec(X, Y, w, b, ref_dw)
    np.testing.assert_allclose([J, db], [ref_J, ref_db], rtol=1e-10)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-10, atol=1e-15)
