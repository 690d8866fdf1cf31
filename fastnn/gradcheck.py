"""Central finite differences against the analytic gradient.

The lecture's intuition made a tool: nudge ``a`` by 0.001 and see how much ``f``
moves, ``f'(a) ~ (f(a + eps) - f(a - eps)) / (2 eps)`` (central, so the error is
O(eps^2) rather than O(eps)).
"""

from dataclasses import dataclass

import numpy as np


def numerical_gradient(f, x, eps=1e-3, indices=None):
    """Central differences of the scalar function ``f`` (no arguments) at ``x``, an array
    nudged in place and restored: ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``.

    Every entry of ``x`` by default (the result has ``x``'s shape), or only the flat
    ``indices`` given (the result is 1-D, one value per index)."""
    x = np.asarray(x)
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be an array that can be nudged in place")
    idx = range(flat.size) if indices is None else indices
    grad = np.empty(len(idx), dtype=np.float64)
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        fp = float(f())
        flat[i] = old - eps
        fm = float(f())
        flat[i] = old
        grad[j] = (fp - fm) / (2 * eps)
    return grad.reshape(x.shape) if indices is None else grad


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` found. ``ok`` when every checked entry satisfies
    ``|analytic - numeric| <= atol + rtol * |numeric|``; ``max_rel_error`` is the largest
    ``|analytic - numeric| / max(|analytic|, |numeric|)`` among entries above ``atol``."""

    ok: bool
    max_abs_error: float
    max_rel_error: float
    n_checked: int
    analytic: np.ndarray
    numeric: np.ndarray
    indices: np.ndarray

    def __bool__(self):
        return self.ok


def gradcheck(model, X, y, loss=None, eps=None, rtol=1e-4, atol=1e-6, max_checks=None,
              seed=0):
    """Check ``model``'s backward pass by central finite differences.

    Parameters
    ----------
    model : Sequential
    X, y : array-like
        A (small) batch and its targets.
    loss : str, optional
        As for ``model.loss_and_grad``.
    eps : float, optional
        The nudge; default 1e-6 for float64 models and 1e-3 (the lecture's) for float32,
        whose rounding makes smaller nudges meaningless. Prefer float64 for checking.
    rtol, atol : float
        Tolerances of the comparison.
    max_checks : int, optional
        Check a random subset of this many parameters (all by default).
    seed : int
        Picks the subset.

    Returns
    -------
    GradcheckResult
        Truthy when the check passes.
    """
    if eps is None:
        eps = 1e-6 if model.dtype == np.float64 else 1e-3
    loss = model._set_loss(loss)
    X, target = model._prepare(X, y, loss)
    model._loss_and_grad(X, target, loss)
    analytic_all = model.flat_gradients.astype(np.float64)
    flat = model.flat_parameters
    n = flat.size
    if max_checks is None or max_checks >= n:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_checks, replace=False))
    grad_buf = np.empty((X.shape[0], model.n_outputs), dtype=model.dtype)

    def f():
        z = model._forward(X, True)
        return loss(z, target, grad_buf, model.backend)

    numeric = numerical_gradient(f, flat, eps, indices=idx)
    analytic = analytic_all[idx]
    err = np.abs(analytic - numeric)
    # |a - n| / max(|a|, |n|), over the entries larger than atol: where both are ~0
    # (a bias before a batch norm, a dropped unit) the ratio is rounding noise
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    rel = np.where(scale > atol, err / np.maximum(scale, atol), 0.0)
    ok = bool(np.all(err <= atol + rtol * np.abs(numeric)))
    return GradcheckResult(ok, float(err.max(initial=0.0)), float(rel.max(initial=0.0)),
                           int(idx.size), analytic, numeric, idx)
