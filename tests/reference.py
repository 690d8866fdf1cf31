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
def philox4x32_10(counter, key):
    """Random123's Philox4x32-10 on Python integers: four 32-bit counter words and two
    key words in, four 32-bit words out."""
    c = list(counter)
    k0, k1 = key
    for _ in range(10):
        prod0 = 0xD2511F53 * c[0]
        prod1 = 0xCD9E8D57 * c[2]
        c = [(prod1 >> 32) ^ c[1] ^ k0, prod1 & 0xFFFFFFFF,
             (prod0 >> 32) ^ c[3] ^ k1, prod0 & 0xFFFFFFFF]
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return c


def dropout_keep(key, step, shape, rate):
    """The 0/1 keep mask: element e (row-major) is kept when the (e % 4)-th word of the
    Philox block counted (e // 4, step), keyed by ``key``, is below (1 - rate) 2^32."""
    key, step = int(key), int(step)
    size = int(np.prod(shape))
    keep = np.zeros(size)
    for e in range(size):
        b = e // 4
        words = philox4x32_10([b & 0xFFFFFFFF, b >> 32, step & 0xFFFFFFFF, step >> 32],
                              [key & 0xFFFFFFFF, key >> 32])
        keep[e] = 1.0 if words[e % 4] / 2.0 ** 32 < 1.0 - rate else 0.0
    return keep.reshape(shape)


def _normalize(v, eps):
    """(v - mean) / sqrt(population variance + eps) of a 1-D list, with exact-rational
    statistics (the statistics module), immune to cancellation."""
    import statistics

    v = [float(a) for a in v]
    mu = statistics.fmean(v)
    var = statistics.pvariance(v, mu)
    return [(a - mu) / math.sqrt(var + eps) for a in v], mu, var


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Each column normalized with its batch mean and biased variance; gamma * . + beta.
    Also returns the batch means and the unbiased variances (for the running estimates)."""
    x = np.asarray(x, dtype=np.float64)
    m, n = x.shape
    out = np.zeros((m, n))
    means, unbiased = np.zeros(n), np.zeros(n)
    for j in range(n):
        xn, mu, var = _normalize(x[:, j], eps)
        for i in range(m):
            out[i, j] = float(gamma[j]) * xn[i] + float(beta[j])
        means[j] = mu
        unbiased[j] = var * m / (m - 1) if m > 1 else np.nan
    return out, means, unbiased


def batchnorm_backward(x, dy, gamma, eps=1e-5):
    """Through the full Jacobian of each column: d xn_i / d x_k =
    (delta_ik - 1/m - xn_i xn_k / m) / sigma. Returns dx, dgamma, dbeta."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    m, n = x.shape
    dx = np.zeros((m, n))
    dgamma, dbeta = np.zeros(n), np.zeros(n)
    for j in range(n):
        xn, _, var = _normalize(x[:, j], eps)
        sigma = math.sqrt(var + eps)
        for k in range(m):
            dx[k, j] = sum(dy[i, j] * float(gamma[j])
                           * ((1.0 if i == k else 0.0) - 1.0 / m - xn[i] * xn[k] / m) / sigma
                           for i in range(m))
        dgamma[j] = sum(dy[i, j] * xn[i] for i in range(m))
        dbeta[j] = sum(dy[i, j] for i in range(m))
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Each row normalized over its features; gamma * . + beta."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([[float(g) * a + float(b) for a, g, b in
                      zip(_normalize(row, eps)[0], gamma, beta)] for row in x])


def layernorm_backward(x, dy, gamma, eps=1e-5):
    """Batch norm's Jacobian applied along each row. Returns dx, dgamma, dbeta."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    m, n = x.shape
    dx = np.zeros((m, n))
    for i in range(m):
        xn, _, var = _normalize(x[i], eps)
        sigma = math.sqrt(var + eps)
        for k in range(n):
            dx[i, k] = sum(dy[i, j] * float(gamma[j])
                           * ((1.0 if j == k else 0.0) - 1.0 / n - xn[j] * xn[k] / n) / sigma
                           for j in range(n))
    xn_all = np.array([_normalize(row, eps)[0] for row in x])
    return dx, (dy * xn_all).sum(axis=0), dy.sum(axis=0)
