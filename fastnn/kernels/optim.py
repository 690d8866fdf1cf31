"""Optimizer updates over a flat parameter buffer, in three forms.

Each kernel is one fused pass over ``param`` and ``grad`` (1-D arrays of equal
length, usually the whole model's flat buffers) and the optimizer's state arrays,
updating them in place. Every scalar (learning rate, bias corrections, ...) is
computed once per step in Python (:mod:`fastnn.optim`) and passed in. Signatures
are uniform::

    <name>_<form>(param, grad, *state, gscale, clip, *scalars)

where the gradient each kernel uses is ``g = clamp(gscale * grad, -clip, clip)``:
``gscale`` folds together the global-norm clipping coefficient and the sign flip
of ``maximize`` (``-(c g) == (-c) g`` exactly), and ``clip`` is the value-clipping
bound (``inf`` when off). Weight decay, the update and the state follow PyTorch's
``torch.optim`` single-tensor path, operation by operation, so that float64 runs
match it to rounding (PyTorch's CPU kernels contract some products into FMAs, so
agreement is to about 1e-15 relative per step, not to the bit).

Loop forms load each element with ``np.float64(a[i])``, compute in float64 scalars
and round once on store, so the Python-run loop and its JIT compilation agree to the
bit while fastmath is off. Vec forms compute in the arrays' dtype, as NumPy does.

Also here: the sum of squared gradients (global-norm clipping and the non-finite
check) and the L1/L2 weight penalty added to the loss and its gradient.
"""

import math

import numpy as np
from numba.extending import register_jitable

from .._config import jit


@register_jitable
def _load_grad(grad, i, gscale, clip):
    """clamp(gscale * grad[i], -clip, clip) as a float64 scalar."""
    g = np.float64(grad[i]) * gscale
    if g > clip:
        return clip
    if g < -clip:
        return -clip
    return g


@register_jitable
def _load(param, grad, i, gscale, clip, weight_decay):
    """(theta_i, g_i) as float64, g clipped and with PyTorch's coupled weight decay
    ``g + wd theta`` (skipped at wd = 0, so that an inf theta does not make a NaN)."""
    p = np.float64(param[i])
    g = _load_grad(grad, i, gscale, clip)
    if weight_decay != 0.0:
        g = g + weight_decay * p
    return p, g


@register_jitable
def _moments(exp_avg, exp_avg_sq, i, g, one_minus_beta1, beta2, one_minus_beta2):
    """Adam's m := lerp(m, g, 1 - beta1) and v := beta2 v + (1 - beta2) g^2, stored."""
    m = _lerp(np.float64(exp_avg[i]), g, one_minus_beta1)
    exp_avg[i] = m
    v = np.float64(exp_avg_sq[i]) * beta2 + one_minus_beta2 * g * g
    exp_avg_sq[i] = v
    return m, v


def _grad_vec(param, grad, gscale, clip, weight_decay):
    """A new array: g clipped, with the coupled weight decay ``g + wd theta``."""
    g = grad * gscale
    if clip != math.inf:
        np.clip(g, -clip, clip, out=g)
    if weight_decay != 0.0:
        g += weight_decay * param
    return g


@register_jitable
def _lerp(a, b, w):
    """a + w (b - a), in the form torch's CPU ``lerp`` uses for each half of w."""
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1.0 - w)


def _lerp_vec(a, b, w):
    """In-place ``a := lerp(a, b, w)``."""
    if w < 0.5:
        a += w * (b - a)
    else:
        np.subtract(b, (b - a) * (1.0 - w), out=a)


# -------------------------------------------------------------------------- SGD
def sgd_loop(param, grad, buf, gscale, clip, lr, weight_decay, momentum,
             one_minus_dampening, nesterov, first):
    """g += wd theta; v := mu v + (1 - dampening) g (v := g on the first step);
    theta := theta - lr (g + mu v if nesterov else v). ``buf`` is unused when mu = 0."""
    for i in range(param.shape[0]):
        p, g = _load(param, grad, i, gscale, clip, weight_decay)
        if momentum != 0.0:
            if first:
                b = g
            else:
                b = np.float64(buf[i]) * momentum + one_minus_dampening * g
            buf[i] = b
            if nesterov:
                g = g + momentum * b
            else:
                g = b
        param[i] = p - lr * g


def sgd_vec(param, grad, buf, gscale, clip, lr, weight_decay, momentum,
            one_minus_dampening, nesterov, first):
    """g += wd theta; v := mu v + (1 - dampening) g (v := g on the first step);
    theta := theta - lr (g + mu v if nesterov else v). ``buf`` is unused when mu = 0."""
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    if momentum != 0.0:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            buf += one_minus_dampening * g
        if nesterov:
            g += momentum * buf
        else:
            g = buf
    param -= lr * g


# --------------------------------------------- momentum, the lecture's EWA form
def momentum_loop(param, grad, v, gscale, clip, lr, weight_decay, beta, one_minus_beta,
                  bias_correction):
    """V := beta V + (1 - beta) dW; W := W - lr V / bias_correction, with
    ``bias_correction = 1 - beta^t`` (or 1 without correction)."""
    for i in range(param.shape[0]):
        p, g = _load(param, grad, i, gscale, clip, weight_decay)
        m = beta * np.float64(v[i]) + one_minus_beta * g
        v[i] = m
        param[i] = p - lr * (m / bias_correction)


def momentum_vec(param, grad, v, gscale, clip, lr, weight_decay, beta, one_minus_beta,
                 bias_correction):
    """V := beta V + (1 - beta) dW; W := W - lr V / bias_correction, with
    ``bias_correction = 1 - beta^t`` (or 1 without correction)."""
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    v *= beta
    v += one_minus_beta * g
    param -= lr * (v / bias_correction)


# ---------------------------------------------------------------------- Adagrad
def adagrad_loop(param, grad, state_sum, gscale, clip, clr, weight_decay, eps):
    """G := G + g^2; theta := theta - clr g / (sqrt(G) + eps), with
    ``clr = lr / (1 + (t - 1) lr_decay)``."""
    for i in range(param.shape[0]):
        p, g = _load(param, grad, i, gscale, clip, weight_decay)
        s = np.float64(state_sum[i]) + g * g
        state_sum[i] = s
        param[i] = p - clr * g / (math.sqrt(s) + eps)


def adagrad_vec(param, grad, state_sum, gscale, clip, clr, weight_decay, eps):
    """G := G + g^2; theta := theta - clr g / (sqrt(G) + eps), with
    ``clr = lr / (1 + (t - 1) lr_decay)``."""
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    state_sum += g * g
    param -= clr * g / (np.sqrt(state_sum) + eps)


# ---------------------------------------------------------------------- RMSprop
def rmsprop_loop(param, grad, square_avg, grad_avg, buf, gscale, clip, lr, weight_decay,
                 alpha, one_minus_alpha, eps, momentum, centered):
    """S := alpha S + (1 - alpha) g^2; centered: M := lerp(M, g, 1 - alpha),
    d = sqrt(S - M^2) + eps, else d = sqrt(S) + eps; with momentum
    B := mu B + g / d, theta := theta - lr B, else theta := theta - lr g / d.

    Where rounding makes S - M^2 negative (nearly constant gradients) it is taken as
    0, not NaN as in PyTorch."""
    for i in range(param.shape[0]):
        p, g = _load(param, grad, i, gscale, clip, weight_decay)
        s = np.float64(square_avg[i]) * alpha + one_minus_alpha * g * g
        square_avg[i] = s
        if centered:
            m = _lerp(np.float64(grad_avg[i]), g, one_minus_alpha)
            grad_avg[i] = m
            s = s - m * m
            if s < 0.0:
                s = 0.0
        d = math.sqrt(s) + eps
        if momentum > 0.0:
            b = np.float64(buf[i]) * momentum + g / d
            buf[i] = b
            param[i] = p - lr * b
        else:
            param[i] = p - lr * g / d


def rmsprop_vec(param, grad, square_avg, grad_avg, buf, gscale, clip, lr, weight_decay,
                alpha, one_minus_alpha, eps, momentum, centered):
    """S := alpha S + (1 - alpha) g^2; centered: M := lerp(M, g, 1 - alpha),
    d = sqrt(S - M^2) + eps, else d = sqrt(S) + eps; with momentum
    B := mu B + g / d, theta := theta - lr B, else theta := theta - lr g / d."""
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    square_avg *= alpha
    square_avg += one_minus_alpha * g * g
    if centered:
        _lerp_vec(grad_avg, g, one_minus_alpha)
        d = np.sqrt(np.maximum(square_avg - grad_avg * grad_avg, 0.0)) + eps
    else:
        d = np.sqrt(square_avg) + eps
    if momentum > 0.0:
        buf *= momentum
        buf += g / d
        param -= lr * buf
    else:
        param -= lr * g / d


# --------------------------------------------------------------------- Adadelta
def adadelta_loop(param, grad, square_avg, acc_delta, gscale, clip, lr, weight_decay,
                  rho, one_minus_rho, eps):
    """S := rho S + (1 - rho) g^2; dx = sqrt(D + eps) / sqrt(S + eps) g;
    D := rho D + (1 - rho) dx^2; theta := theta - lr dx (eps inside both roots)."""
    for i in range(param.shape[0]):
        p, g = _load(param, grad, i, gscale, clip, weight_decay)
        s = np.float64(square_avg[i]) * rho + one_minus_rho * g * g
        square_avg[i] = s
        a = np.float64(acc_delta[i])
        delta = math.sqrt(a + eps) / math.sqrt(s + eps) * g
        acc_delta[i] = a * rho + one_minus_rho * delta * delta
        param[i] = p - lr * delta


def adadelta_vec(param, grad, square_avg, acc_delta, gscale, clip, lr, weight_decay,
                 rho, one_minus_rho, eps):
    """S := rho S + (1 - rho) g^2; dx = sqrt(D + eps) / sqrt(S + eps) g;
    D := rho D + (1 - rho) dx^2; theta := theta - lr dx (eps inside both roots)."""
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    square_avg *= rho
    square_avg += one_minus_rho * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta *= rho
    acc_delta += one_minus_rho * delta * delta
    param -= lr * delta


# ------------------------------------------------------------ Adam, AdamW, AMSGrad
def adam_loop(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, gscale, clip, decay,
              weight_decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt,
              eps, amsgrad):
    """theta := decay theta (AdamW); g += wd theta (Adam); m := lerp(m, g, 1 - beta1);
    v := beta2 v + (1 - beta2) g^2 (AMSGrad: vmax := max(vmax, v), used for v);
    theta := theta - step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps), with
    ``step_size = lr / (1 - beta1^t)``: eps outside the root, as in PyTorch."""
    for i in range(param.shape[0]):
        # decoupled decay (AdamW) and coupled decay (Adam) never both act: wd = 0 or
        # decay = 1, so the order of the two does not matter
        p, g = _load(param, grad, i, gscale, clip, weight_decay)
        p = p * decay
        m, v = _moments(exp_avg, exp_avg_sq, i, g, one_minus_beta1, beta2, one_minus_beta2)
        if amsgrad:
            vmax = np.float64(max_exp_avg_sq[i])
            if v > vmax:
                vmax = v
            max_exp_avg_sq[i] = vmax
            v = vmax
        param[i] = p - step_size * m / (math.sqrt(v) / bc2_sqrt + eps)


def adam_vec(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, gscale, clip, decay,
             weight_decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt,
             eps, amsgrad):
    """theta := decay theta (AdamW); g += wd theta (Adam); m := lerp(m, g, 1 - beta1);
    v := beta2 v + (1 - beta2) g^2 (AMSGrad: vmax := max(vmax, v), used for v);
    theta := theta - step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps)."""
    param *= decay
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    _lerp_vec(exp_avg, g, one_minus_beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += one_minus_beta2 * g * g
    v = exp_avg_sq
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    param -= step_size * exp_avg / (np.sqrt(v) / bc2_sqrt + eps)


# ----------------------------------------------------------------------- Adamax
def adamax_loop(param, grad, exp_avg, exp_inf, gscale, clip, weight_decay, one_minus_beta1,
                beta2, eps, clr):
    """m := lerp(m, g, 1 - beta1); u := max(beta2 u, |g| + eps);
    theta := theta - clr m / u, with ``clr = lr / (1 - beta1^t)``."""
    for i in range(param.shape[0]):
        p, g = _load(param, grad, i, gscale, clip, weight_decay)
        m = _lerp(np.float64(exp_avg[i]), g, one_minus_beta1)
        exp_avg[i] = m
        u = np.float64(exp_inf[i]) * beta2
        a = abs(g) + eps
        if a > u:
            u = a
        exp_inf[i] = u
        param[i] = p - clr * m / u


def adamax_vec(param, grad, exp_avg, exp_inf, gscale, clip, weight_decay, one_minus_beta1,
               beta2, eps, clr):
    """m := lerp(m, g, 1 - beta1); u := max(beta2 u, |g| + eps);
    theta := theta - clr m / u, with ``clr = lr / (1 - beta1^t)``."""
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    _lerp_vec(exp_avg, g, one_minus_beta1)
    exp_inf *= beta2
    np.maximum(exp_inf, np.abs(g) + eps, out=exp_inf)
    param -= clr * exp_avg / exp_inf


# ------------------------------------------------------------------------ NAdam
def nadam_loop(param, grad, exp_avg, exp_avg_sq, gscale, clip, decay, weight_decay,
               one_minus_beta1, beta2, one_minus_beta2, bias_correction2, eps, c_grad, c_avg):
    """m := lerp(m, g, 1 - beta1); v := beta2 v + (1 - beta2) g^2;
    d = sqrt(v / (1 - beta2^t)) + eps; theta := theta - c_grad g / d - c_avg m / d
    with ``c_grad = lr (1 - mu_t) / (1 - prod mu)`` and
    ``c_avg = lr mu_{t+1} / (1 - prod mu mu_{t+1})`` (Dozat's Nesterov momentum)."""
    for i in range(param.shape[0]):
        # decoupled decay (AdamW) and coupled decay (Adam) never both act: wd = 0 or
        # decay = 1, so the order of the two does not matter
        p, g = _load(param, grad, i, gscale, clip, weight_decay)
        p = p * decay
        m, v = _moments(exp_avg, exp_avg_sq, i, g, one_minus_beta1, beta2, one_minus_beta2)
        d = math.sqrt(v / bias_correction2) + eps
        p = p - c_grad * g / d
        param[i] = p - c_avg * m / d


def nadam_vec(param, grad, exp_avg, exp_avg_sq, gscale, clip, decay, weight_decay,
              one_minus_beta1, beta2, one_minus_beta2, bias_correction2, eps, c_grad, c_avg):
    """m := lerp(m, g, 1 - beta1); v := beta2 v + (1 - beta2) g^2;
    d = sqrt(v / (1 - beta2^t)) + eps; theta := theta - c_grad g / d - c_avg m / d."""
    param *= decay
    g = _grad_vec(param, grad, gscale, clip, weight_decay)
    _lerp_vec(exp_avg, g, one_minus_beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += one_minus_beta2 * g * g
    d = np.sqrt(exp_avg_sq / bias_correction2) + eps
    param -= c_grad * g / d
    param -= c_avg * exp_avg / d


# -------------------------------------------------------- gradient norm, penalty
def sumsq_loop(grad):
    """sum_i grad_i^2 in float64: NaN or inf if any element is (or if it overflows)."""
    # Four partial sums: one running sum is a chain of dependent adds that LLVM may not
    # reorder without fastmath, about 5x slower than four independent chains.
    n = grad.shape[0]
    m = n - n % 4
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for i in range(0, m, 4):
        g0 = np.float64(grad[i])
        g1 = np.float64(grad[i + 1])
        g2 = np.float64(grad[i + 2])
        g3 = np.float64(grad[i + 3])
        s0 += g0 * g0
        s1 += g1 * g1
        s2 += g2 * g2
        s3 += g3 * g3
    for i in range(m, n):
        g = np.float64(grad[i])
        s0 += g * g
    return (s0 + s1) + (s2 + s3)


def sumsq_vec(grad):
    """sum_i grad_i^2 in float64: NaN or inf if any element is (or if it overflows)."""
    return float(np.einsum("i,i->", grad, grad, dtype=np.float64))


def penalty_loop(param, grad, starts, stops, l1, l2):
    """Over the ranges ``[starts[r], stops[r])`` of the weights: dW += l2 W + l1 sign(W);
    returns ``l2/2 sum W^2 + l1 sum |W|`` (``l1``, ``l2`` already divided by m)."""
    s1 = 0.0
    s2 = 0.0
    for r in range(starts.shape[0]):
        for i in range(starts[r], stops[r]):
            w = np.float64(param[i])
            sign = 1.0 if w > 0.0 else (-1.0 if w < 0.0 else 0.0)
            s1 += abs(w)
            s2 += w * w
            grad[i] = np.float64(grad[i]) + l2 * w + l1 * sign
    return 0.5 * l2 * s2 + l1 * s1


def penalty_vec(param, grad, starts, stops, l1, l2):
    """Over the ranges ``[starts[r], stops[r])`` of the weights: dW += l2 W + l1 sign(W);
    returns ``l2/2 sum W^2 + l1 sum |W|`` (``l1``, ``l2`` already divided by m)."""
    s1 = 0.0
    s2 = 0.0
    for a, b in zip(starts, stops):
        w = param[a:b]
        s1 += float(np.abs(w).sum(dtype=np.float64))
        s2 += float(np.einsum("i,i->", w, w, dtype=np.float64))
        grad[a:b] += l2 * w + l1 * np.sign(w)
    return 0.5 * l2 * s2 + l1 * s1


# ------------------------------------------------------------ compiled forms
sgd_jit = jit(sgd_loop)
momentum_jit = jit(momentum_loop)
adagrad_jit = jit(adagrad_loop)
rmsprop_jit = jit(rmsprop_loop)
adadelta_jit = jit(adadelta_loop)
adam_jit = jit(adam_loop)
adamax_jit = jit(adamax_loop)
nadam_jit = jit(nadam_loop)
sumsq_jit = jit(sumsq_loop)
penalty_jit = jit(penalty_loop)


def _table(name):
    g = globals()
    return {form: g[f"{name}_{form}"] for form in ("loop", "vec", "jit")}


#: name -> {form -> kernel}; kernels ``(param, grad, *state, gscale, clip, *scalars)``.
OPTIMIZER_KERNELS = {name: _table(name) for name in
                     ("sgd", "momentum", "adagrad", "rmsprop", "adadelta", "adam", "adamax",
                      "nadam")}
SGD_KERNELS = OPTIMIZER_KERNELS["sgd"]
#: form -> ``sumsq(grad) -> float``.
SUMSQ_KERNELS = _table("sumsq")
#: form -> ``penalty(param, grad, starts, stops, l1, l2) -> float``.
PENALTY_KERNELS = _table("penalty")
