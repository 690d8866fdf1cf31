"""Naive twins of fastnn's kernels: slow, obvious, written independently of fastnn.

Each function takes plain arrays and returns new arrays (no ``out=``), computing in
float64 with the most literal formula, so that a bug in a kernel cannot hide behind
the same bug here. Tests call these ``ref_*`` and compare them with ``comp_*``.
"""

import math

import numpy as np


# ================================================================ activations
def activation(name, z, alpha=0.01):
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    for idx, v in np.ndenumerate(z):
        if name == "identity":
            out[idx] = v
        elif name == "sigmoid":
            out[idx] = 1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0
        elif name == "tanh":
            out[idx] = math.tanh(v)
        elif name == "relu":
            out[idx] = max(v, 0.0)
        elif name == "leaky_relu":
            out[idx] = v if v > 0 else alpha * v
    if name == "softmax":
        for i in range(z.shape[0]):
            e = [math.exp(v - max(z[i])) for v in z[i]]
            out[i] = [x / sum(e) for x in e]
    return out


def activation_jacobian_vjp(name, z, da, alpha=0.01):
    """dZ = dA * g'(Z) from the derivative of g at Z (not at A)."""
    z = np.asarray(z, dtype=np.float64)
    da = np.asarray(da, dtype=np.float64)
    if name == "softmax":
        out = np.empty_like(z)
        for i in range(z.shape[0]):
            s = activation("softmax", z[i : i + 1])[0]
            jac = np.diag(s) - np.outer(s, s)
            out[i] = jac.T @ da[i]
        return out
    g = np.empty_like(z)
    for idx, v in np.ndenumerate(z):
        if name == "identity":
            g[idx] = 1.0
        elif name == "sigmoid":
            s = 1.0 / (1.0 + math.exp(-v))
            g[idx] = s * (1 - s)
        elif name == "tanh":
            g[idx] = 1.0 - math.tanh(v) ** 2
        elif name == "relu":
            g[idx] = 1.0 if v > 0 else 0.0
        elif name == "leaky_relu":
            g[idx] = 1.0 if v > 0 else alpha
    return da * g


# ====================================================================== dense
def dense_forward(x, w, b):
    """Z = X W^T + b, one dot product per (sample, unit)."""
    x, w, b = (np.asarray(a, dtype=np.float64) for a in (x, w, b))
    z = np.zeros((x.shape[0], w.shape[0]))
    for i in range(x.shape[0]):
        for o in range(w.shape[0]):
            z[i, o] = sum(x[i, k] * w[o, k] for k in range(x.shape[1])) + b[o]
    return z


def dense_backward(x, w, dz):
    """dW = dZ^T X, db = column sums of dZ, dX = dZ W."""
    x, w, dz = (np.asarray(a, dtype=np.float64) for a in (x, w, dz))
    return dz.T @ x, dz.sum(axis=0), dz @ w


# ===================================================================== losses
def softmax_cross_entropy(z, y):
    """Mean of -log softmax(z_i)[y_i]; gradient (p - onehot)/m."""
    z = np.asarray(z, dtype=np.float64)
    m, k = z.shape
    loss = 0.0
    grad = np.zeros_like(z)
    for i in range(m):
        p = activation("softmax", z[i : i + 1])[0]
        loss -= math.log(p[y[i]])
        onehot = np.zeros(k)
        onehot[y[i]] = 1
        grad[i] = (p - onehot) / m
    return loss / m, grad


def binary_cross_entropy(z, y):
    """The lecture's logistic loss on a = sigmoid(z): mean of -y log a - (1-y) log(1-a)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(z.shape)
    a = 1.0 / (1.0 + np.exp(-z))
    loss = float(np.mean(-y * np.log(a) - (1 - y) * np.log(1 - a)))
    return loss, (a - y) / z.size


def mse(z, y):
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(z.shape)
    return float(np.mean((z - y) ** 2)), 2 * (z - y) / z.size


def quadratic(z, y):
    """The lecture's C = 1/(2n) sum_x ||y(x) - a||^2."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(z.shape)
    m = z.shape[0]
    return float(np.sum((y - z) ** 2) / (2 * m)), (z - y) / m


# ================================================================= optimizers
# (naive twins of fastnn/kernels/optim.py go here)


# ======================================================== dropout and norms
# (naive twins of fastnn/kernels/dropout.py and fastnn/kernels/norm.py go here)
