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
# Each twin runs a whole trajectory: ``grads`` is a sequence of gradient vectors,
# the result the list of parameter vectors after each step. Textbook formulas, one
# element at a time, in plain Python floats (not PyTorch's operation order).
def ewa(values, beta, bias_correction=False):
    """V_t = beta V_{t-1} + (1 - beta) s_t, V_0 = 0; optionally V_t / (1 - beta^t)."""
    v, out = 0.0, []
    for t, s in enumerate(values, start=1):
        v = beta * v + (1 - beta) * s
        out.append(v / (1 - beta**t) if bias_correction else v)
    return out


def _clip(g, clip_value=None, clip_norm=None):
    g = [float(x) for x in g]
    if clip_value is not None:
        g = [min(max(x, -clip_value), clip_value) for x in g]
    if clip_norm is not None:
        norm = math.sqrt(sum(x * x for x in g))
        g = [x * min(1.0, clip_norm / (norm + 1e-6)) for x in g]
    return g


def _run(p0, grads, update, maximize=False, clip_value=None, clip_norm=None):
    p = [float(x) for x in p0]
    out = []
    for t, g in enumerate(grads, start=1):
        g = _clip(g, clip_value, clip_norm)
        if maximize:
            g = [-x for x in g]
        p = update(t, p, g)
        out.append(np.array(p))
    return out


def sgd(p0, grads, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
        **kw):
    buf = None

    def update(t, p, g):
        nonlocal buf
        g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        if momentum:
            buf = list(g) if buf is None else [momentum * b + (1 - dampening) * gi
                                               for b, gi in zip(buf, g)]
            g = [gi + momentum * b for gi, b in zip(g, buf)] if nesterov else buf
        return [pi - lr * gi for pi, gi in zip(p, g)]

    return _run(p0, grads, update, **kw)


def momentum(p0, grads, lr=0.01, beta=0.9, bias_correction=False, weight_decay=0.0, **kw):
    """The lecture's momentum: W -= lr EWA(dW), optionally bias-corrected."""
    v = [0.0] * len(p0)

    def update(t, p, g):
        nonlocal v
        g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        v = [beta * vi + (1 - beta) * gi for vi, gi in zip(v, g)]
        c = 1 - beta**t if bias_correction else 1.0
        return [pi - lr * vi / c for pi, vi in zip(p, v)]

    return _run(p0, grads, update, **kw)


def adagrad(p0, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
            eps=1e-10, **kw):
    s = [initial_accumulator_value] * len(p0)

    def update(t, p, g):
        nonlocal s
        g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        s = [si + gi**2 for si, gi in zip(s, g)]
        clr = lr / (1 + (t - 1) * lr_decay)
        return [pi - clr * gi / (math.sqrt(si) + eps) for pi, gi, si in zip(p, g, s)]

    return _run(p0, grads, update, **kw)


def rmsprop(p0, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
            centered=False, **kw):
    n = len(p0)
    s, m, b = [0.0] * n, [0.0] * n, [0.0] * n

    def update(t, p, g):
        nonlocal s, m, b
        g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        s = [alpha * si + (1 - alpha) * gi**2 for si, gi in zip(s, g)]
        m = [alpha * mi + (1 - alpha) * gi for mi, gi in zip(m, g)]
        d = [math.sqrt(si - (mi**2 if centered else 0.0)) + eps for si, mi in zip(s, m)]
        if momentum:
            b = [momentum * bi + gi / di for bi, gi, di in zip(b, g, d)]
            return [pi - lr * bi for pi, bi in zip(p, b)]
        return [pi - lr * gi / di for pi, gi, di in zip(p, g, d)]

    return _run(p0, grads, update, **kw)


def adadelta(p0, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, **kw):
    n = len(p0)
    s, acc = [0.0] * n, [0.0] * n

    def update(t, p, g):
        nonlocal s, acc
        g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        s = [rho * si + (1 - rho) * gi**2 for si, gi in zip(s, g)]
        dx = [math.sqrt(ai + eps) / math.sqrt(si + eps) * gi for ai, si, gi in zip(acc, s, g)]
        acc = [rho * ai + (1 - rho) * d**2 for ai, d in zip(acc, dx)]
        return [pi - lr * d for pi, d in zip(p, dx)]

    return _run(p0, grads, update, **kw)


def adam(p0, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
         decoupled_weight_decay=False, **kw):
    b1, b2 = betas
    n = len(p0)
    m, v, vmax = [0.0] * n, [0.0] * n, [0.0] * n

    def update(t, p, g):
        nonlocal m, v, vmax
        if decoupled_weight_decay:
            p = [pi * (1 - lr * weight_decay) for pi in p]
        else:
            g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi**2 for vi, gi in zip(v, g)]
        vmax = [max(a, b) for a, b in zip(vmax, v)]
        vv = vmax if amsgrad else v
        m_hat = [mi / (1 - b1**t) for mi in m]
        v_hat = [vi / (1 - b2**t) for vi in vv]
        return [pi - lr * mh / (math.sqrt(vh) + eps) for pi, mh, vh in zip(p, m_hat, v_hat)]

    return _run(p0, grads, update, **kw)


def adamw(p0, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
          **kw):
    return adam(p0, grads, lr, betas, eps, weight_decay, amsgrad, True, **kw)


def adamax(p0, grads, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kw):
    b1, b2 = betas
    n = len(p0)
    m, u = [0.0] * n, [0.0] * n

    def update(t, p, g):
        nonlocal m, u
        g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        u = [max(b2 * ui, abs(gi) + eps) for ui, gi in zip(u, g)]
        return [pi - lr / (1 - b1**t) * mi / ui for pi, mi, ui in zip(p, m, u)]

    return _run(p0, grads, update, **kw)


def nadam(p0, grads, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
          momentum_decay=4e-3, decoupled_weight_decay=False, **kw):
    b1, b2 = betas
    n = len(p0)
    m, v = [0.0] * n, [0.0] * n
    mus = [1.0]  # mu_0 product

    def mu(t):
        return b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

    def update(t, p, g):
        nonlocal m, v
        if decoupled_weight_decay:
            p = [pi * (1 - lr * weight_decay) for pi in p]
        else:
            g = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        mus.append(mus[-1] * mu(t))
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi**2 for vi, gi in zip(v, g)]
        out = []
        for pi, gi, mi, vi in zip(p, g, m, v):
            d = math.sqrt(vi / (1 - b2**t)) + eps
            step = (lr * (1 - mu(t)) / (1 - mus[-1]) * gi
                    + lr * mu(t + 1) / (1 - mus[-1] * mu(t + 1)) * mi)
            out.append(pi - step / d)
        return out

    return _run(p0, grads, update, **kw)


def weight_penalty(weights, m, l1=0.0, l2=0.0):
    """(lambda2/(2m) sum w^2 + lambda1/m sum |w|, its gradient) over a list of weights."""
    value = sum(l2 / (2 * m) * float(np.sum(np.square(w, dtype=np.float64)))
                + l1 / m * float(np.sum(np.abs(w), dtype=np.float64)) for w in weights)
    grads = [l2 / m * np.asarray(w, np.float64) + l1 / m * np.sign(w) for w in weights]
    return value, grads


# ======================================================== dropout and norms
# (naive twins of fastnn/kernels/dropout.py and fastnn/kernels/norm.py go here)
def triple32(x):
    """Chris Wellons's triple32 integer hash on a Python int below 2^32."""
    x ^= x >> 17
    x = (x * 0xED5AD4BB) & 0xFFFFFFFF
    x ^= x >> 11
    x = (x * 0xAC4C1B51) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x31848BAB) & 0xFFFFFFFF
    x ^= x >> 14
    return x


def counter_words(key, step, size):
    """The first ``size`` words of the (key, step) stream: offset a and odd stride g
    from key and step's 32-bit halves chained through triple32, then word e =
    triple32((a + e g) mod 2^32)."""
    key, step = int(key), int(step)
    h = triple32((step >> 32) ^ 0x9E3779B9)
    h = triple32(h ^ (step & 0xFFFFFFFF))
    h = triple32(h ^ (key >> 32))
    a = triple32(h ^ (key & 0xFFFFFFFF))
    g = triple32(a ^ 0x7F4A7C15) | 1
    return [triple32((a + e * g) % 2 ** 32) for e in range(size)]


def dropout_keep(key, step, shape, rate):
    """The 0/1 keep mask: element e (row-major) is kept when its word of the
    (key, step) stream, over 2^32, is below 1 - rate."""
    size = int(np.prod(shape))
    words = counter_words(key, step, size)
    keep = np.array([1.0 if w / 2.0 ** 32 < 1.0 - rate else 0.0 for w in words])
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
