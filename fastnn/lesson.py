"""The lecture's lesson, replayed: the same equation as a Python loop, vectorized, and JIT.

``python -m fastnn lesson`` runs :func:`run_lesson` and prints its table:

1. the dot product of two vectors (the course quotes about 481 ms for a Python
   for-loop over 1,000,000 elements against about 1.5 ms for ``np.dot``);
2. logistic regression trained by batch gradient descent, the lecture's per-sample
   loop (``J, dw, db`` accumulated over the ``m`` samples, then divided by ``m``)
   against its vectorized form (``Z = w^T X + b, A = sigma(Z), dZ = A - Y,
   dW = X dZ^T / m``) against the loop compiled by numba;
3. a two-layer network's forward and backward pass: a loop over the samples
   calling per-sample vector code, against whole-batch matrices, against JIT.

and :func:`gradient_descent_1d` traces the lecture's one-dimensional gradient
descent ``x_i = x_{i-1} - v f'(x_{i-1})`` for a good learning rate, one too high
(it oscillates around the minimum) and one that decays.

The lecture writes samples as columns: here ``X`` is ``(n_x, m)`` and ``Y`` is
``(m,)`` for logistic regression, as in the lecture. The two-layer network reuses
fastnn's dense kernels, which take samples as rows.
"""

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
from numba.extending import register_jitable

from ._config import jit
from .kernels.activations import CODES, sigmoid_forward_vec
from .kernels.dense import (
    dense_backward_jit,
    dense_backward_loop_jit,
    dense_backward_vec,
    dense_forward_jit,
    dense_forward_loop_jit,
    dense_forward_vec,
)
from .kernels.losses import binary_cross_entropy_jit, binary_cross_entropy_vec

#: Problem sizes of the full lesson and of ``--quick``.
FULL = dict(dot_n=1_000_000, samples=1000, features=20, hidden=64, iterations=50, repeats=3)
QUICK = dict(dot_n=100_000, samples=200, features=10, hidden=16, iterations=10, repeats=1)


# ================================================================ dot product
def dot_loop(a, b):
    """c = sum_i a_i b_i, one element at a time."""
    c = 0.0
    for i in range(a.shape[0]):
        c += a[i] * b[i]
    return c


def dot_vec(a, b):
    """c = a . b (BLAS)."""
    return float(np.dot(a, b))


dot_jit = jit(dot_loop)


# ======================================================== logistic regression
@register_jitable
def logreg_grad_loop(X, Y, w, b, dw):
    """The lecture's per-sample loop; returns ``(J, db)`` and writes ``dw``::

        J = 0, dw = 0, db = 0
        for i = 1 to m:  z = w^T x(i) + b;  a = sigma(z);  J += L(a, y(i))
                         dz = a - y(i);  dw += x(i) dz;  db += dz
        J /= m, dw /= m, db /= m

    ``L(a, y) = -y log a - (1 - y) log(1 - a)`` is evaluated from ``z`` as
    ``max(z, 0) - z y + log(1 + exp(-|z|))``, the same number without overflow.
    """
    n_x, m = X.shape
    J = 0.0
    db = 0.0
    for j in range(n_x):
        dw[j] = 0.0
    for i in range(m):
        z = np.float64(b)
        for j in range(n_x):
            z += np.float64(w[j]) * np.float64(X[j, i])
        y = np.float64(Y[i])
        e = math.exp(-abs(z))
        a = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
        J += max(z, 0.0) - z * y + math.log1p(e)
        dz = a - y
        for j in range(n_x):
            dw[j] += np.float64(X[j, i]) * dz
        db += dz
    for j in range(n_x):
        dw[j] /= m
    return J / m, db / m


def logreg_grad_vec(X, Y, w, b, dw):
    """Z = w^T X + b; A = sigma(Z); dZ = A - Y; dW = X dZ^T / m; db = sum(dZ) / m."""
    m = X.shape[1]
    Z = w @ X + b
    A = np.empty_like(Z)
    sigmoid_forward_vec(Z, 0.0, A)
    J = float(np.sum(np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z))))) / m
    dZ = A - Y
    dw[:] = X @ dZ / m
    return J, float(np.sum(dZ)) / m


logreg_grad_jit = jit(logreg_grad_loop)


def logreg_train_loop(X, Y, w, b, lr, iterations, costs):
    """Batch gradient descent: ``w := w - lr dw; b := b - lr db``, ``iterations`` times.

    Updates ``w`` in place, writes the cost of each iteration into ``costs`` and
    returns the final ``b``.
    """
    dw = np.zeros(w.shape[0])
    for it in range(iterations):
        J, db = logreg_grad_loop(X, Y, w, b, dw)
        costs[it] = J
        for j in range(w.shape[0]):
            w[j] -= lr * dw[j]
        b -= lr * db
    return b


def logreg_train_vec(X, Y, w, b, lr, iterations, costs):
    """:func:`logreg_train_loop` with the vectorized gradient."""
    dw = np.zeros(w.shape[0])
    for it in range(iterations):
        costs[it], db = logreg_grad_vec(X, Y, w, b, dw)
        w -= lr * dw
        b -= lr * db
    return b


logreg_train_jit = jit(logreg_train_loop)


# ==================================================== two-layer network pass
_TANH = CODES["tanh"]
_IDENTITY = CODES["identity"]


def _net_grads(X, Y, W1, b1, W2, b2, forward, backward, loss):
    """One forward and backward pass over the rows of X with the given kernels.

    ``A1 = tanh(X W1^T + b1)``, ``Z2 = A1 W2^T + b2``, ``J`` = binary cross-entropy of
    ``sigma(Z2)``; ``dZ2 = (A2 - Y) / m`` and back through both dense layers.
    Returns ``(J, dW1, db1, dW2, db2)``.
    """
    m = X.shape[0]
    A1 = np.empty((m, W1.shape[0]))
    Z2 = np.empty((m, W2.shape[0]))
    dZ2 = np.empty_like(Z2)
    dA1 = np.empty_like(A1)
    dZ1 = np.empty_like(A1)
    grads = [np.empty_like(W1), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2)]
    forward(X, W1, b1, _TANH, 0.0, A1)
    forward(A1, W2, b2, _IDENTITY, 0.0, Z2)
    J = loss(Z2, Y, dZ2)
    backward(A1, W2, Z2, dZ2, _IDENTITY, 0.0, dZ2, grads[2], grads[3], dA1)
    backward(X, W1, A1, dA1, _TANH, 0.0, dZ1, grads[0], grads[1], np.empty((0, 0)))
    return (J, *grads)


def net_pass_loop(X, Y, W1, b1, W2, b2):
    """The lecture's ``for i = 1 to m: z[1](i) = W[1] x(i) + b[1] ...``: one sample at a
    time through per-sample vector code, gradients summed over samples then / m."""
    m = X.shape[0]
    J = 0.0
    total = [np.zeros_like(W1), np.zeros_like(b1), np.zeros_like(W2), np.zeros_like(b2)]
    for i in range(m):
        Ji, *grads = _net_grads(X[i:i + 1], Y[i:i + 1], W1, b1, W2, b2,
                                dense_forward_vec, dense_backward_vec, binary_cross_entropy_vec)
        J += Ji
        for t, g in zip(total, grads):
            t += g
    return (J / m, *(t / m for t in total))


def net_pass_vec(X, Y, W1, b1, W2, b2):
    """Whole batch: ``Z[1] = W[1] X + b[1]``... as NumPy matrix products."""
    return _net_grads(X, Y, W1, b1, W2, b2, dense_forward_vec, dense_backward_vec,
                      binary_cross_entropy_vec)


def net_pass_jit(X, Y, W1, b1, W2, b2):
    """Whole batch through fastnn's JIT kernels: BLAS inside numba, fused epilogues."""
    return _net_grads(X, Y, W1, b1, W2, b2, dense_forward_jit, dense_backward_jit,
                      binary_cross_entropy_jit)


def net_pass_loop_jit(X, Y, W1, b1, W2, b2):
    """Whole batch through the textbook triple loops compiled by numba (no BLAS)."""
    return _net_grads(X, Y, W1, b1, W2, b2, dense_forward_loop_jit, dense_backward_loop_jit,
                      binary_cross_entropy_jit)


# ================================================================ the runner
@dataclass
class Experiment:
    """One equation, timed in several forms; the first form, ``'loop'``, is the reference.

    ``times`` maps a form to its best time in seconds, ``results`` to what it
    returned, ``max_diff`` to the largest difference of its result from the loop's
    (relative to the largest value), ``bitwise`` to whether it equals the loop's bit
    for bit. ``agree``: every form within ``rtol`` of the loop.
    """

    name: str
    times: dict
    results: dict = field(repr=False)
    rtol: float
    note: str = ""
    max_diff: dict = field(init=False)
    bitwise: dict = field(init=False)
    agree: bool = field(init=False)

    def __post_init__(self):
        ref = _parts(self.results["loop"])
        self.max_diff, self.bitwise = {}, {}
        for form, res in self.results.items():
            if form != "loop":
                comp = _parts(res)
                self.max_diff[form] = max(_rel_diff(r, c) for r, c in zip(ref, comp))
                self.bitwise[form] = all(np.array_equal(r, c) for r, c in zip(ref, comp))
        self.agree = all(d <= self.rtol for d in self.max_diff.values())

    def speedup(self, form):
        return self.times["loop"] / self.times[form]


def _parts(result):
    parts = result if isinstance(result, tuple) else (result,)
    return [np.atleast_1d(np.asarray(p, dtype=np.float64)) for p in parts]


def _rel_diff(ref, comp):
    scale = max(float(np.max(np.abs(ref))), 1e-300)
    return float(np.max(np.abs(ref - comp))) / scale


def _best_time(fn, repeats):
    best = math.inf
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _compare(name, forms, repeats, rtol, note=""):
    """Time every ``form -> fn`` of ``forms``, the loop first; compiled forms are called
    once before timing so that compilation stays out of it."""
    times, results = {}, {}
    for form, fn in forms.items():
        if form != "loop":
            fn()  # warm-up: compile, allocate
        times[form], results[form] = _best_time(fn, repeats)
    return Experiment(name, times, results, rtol, note)


def lecture_data(samples, features, seed=0):
    """A separable-ish binary problem in the lecture's layout: ``X (n_x, m)``, ``Y (m,)``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((features, samples))
    w_true = rng.standard_normal(features)
    Y = (w_true @ X + 0.5 * rng.standard_normal(samples) > 0).astype(np.float64)
    return X, Y


def run_dot(n, repeats, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n), rng.random(n)
    return _compare(
        f"dot product, n={n:,}",
        {"loop": lambda: dot_loop(a, b), "vec": lambda: dot_vec(a, b),
         "jit": lambda: dot_jit(a, b)},
        repeats, rtol=1e-12,
        note="vec: BLAS sums in SIMD order; jit keeps the loop's order (fastmath off), "
             "so it matches the loop bit for bit but cannot vectorize the sum")


def run_logreg(samples, features, iterations, repeats, lr=0.5, seed=0):
    X, Y = lecture_data(samples, features, seed)

    def train(kernel):
        def run():
            w = np.zeros(features)
            costs = np.empty(iterations)
            b = kernel(X, Y, w, 0.0, lr, iterations, costs)
            return w, np.float64(b), costs
        return run

    return _compare(
        f"logistic regression, m={samples} n_x={features}, {iterations} GD steps",
        {"loop": train(logreg_train_loop), "vec": train(logreg_train_vec),
         "jit": train(logreg_train_jit)},
        repeats, rtol=1e-12, note="compared: final w, b and the cost of every step")


def two_layer_params(samples, features, hidden, seed=0):
    """Samples as rows (fastnn's layout) for the two-layer network."""
    X, Y = lecture_data(samples, features, seed)
    rng = np.random.default_rng(seed + 1)
    W1 = rng.standard_normal((hidden, features)) * np.sqrt(1.0 / features)
    b1 = 0.1 * rng.standard_normal(hidden)
    W2 = rng.standard_normal((1, hidden)) * np.sqrt(1.0 / hidden)
    b2 = 0.1 * rng.standard_normal(1)
    return np.ascontiguousarray(X.T), Y.reshape(-1, 1), W1, b1, W2, b2


def run_network(samples, features, hidden, repeats, seed=0):
    args = two_layer_params(samples, features, hidden, seed)
    return _compare(
        f"2-layer net fwd+bwd, m={samples} {features}-{hidden}-1",
        {"loop": lambda: net_pass_loop(*args), "vec": lambda: net_pass_vec(*args),
         "jit": lambda: net_pass_jit(*args), "jit loop": lambda: net_pass_loop_jit(*args)},
        repeats, rtol=1e-9,
        note="jit loop: the textbook triple loop compiled, no BLAS")


def run_lesson(dot_n, samples, features, hidden, iterations, repeats, seed=0):
    """The three experiments; a list of :class:`Experiment`."""
    return [run_dot(dot_n, repeats, seed),
            run_logreg(samples, features, iterations, repeats, seed=seed),
            run_network(samples, features, hidden, repeats, seed)]


@contextlib.contextmanager
def blas_threads(n):
    """Limit every loaded BLAS to ``n`` threads while the block runs (needs threadpoolctl).

    numpy and scipy (whose BLAS numba's ``np.dot`` calls) each load an OpenBLAS with
    one thread per core; on a small or busy machine their threads oversubscribe the
    cores and the vectorized and JIT times become noise. Yields False, changing
    nothing, when ``n`` is None or threadpoolctl is not installed.
    """
    if n is None:
        yield False
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    import scipy.linalg  # noqa: F401  load scipy's OpenBLAS now, so that the limit covers it

    with threadpool_limits(limits=n):
        yield True


# ======================================================= 1-D gradient descent
def f_1d(x):
    """The lecture's bowl, f(x) = x^2, minimum at 0."""
    return x * x


def df_1d(x):
    return 2.0 * x


def gradient_descent_1d(lr, x0=4.0, steps=20, decay=0.0, grad=df_1d):
    """``x_i = x_{i-1} - v_i f'(x_{i-1})`` with ``v_i = lr / (1 + decay * (i - 1))``.

    Returns the path ``[x_0, x_1, ..., x_steps]``.
    """
    path = [float(x0)]
    x = float(x0)
    for i in range(steps):
        x = x - lr / (1.0 + decay * i) * grad(x)
        path.append(x)
    return np.array(path)


#: label -> keyword arguments of gradient_descent_1d
GD_CASES = {
    "good lr 0.1": dict(lr=0.1),
    "too high lr 1.0": dict(lr=1.0),
    "lr 1.0 decaying": dict(lr=1.0, decay=0.3),
}


def gradient_descent_paths(x0=4.0, steps=20):
    return {label: gradient_descent_1d(x0=x0, steps=steps, **kw) for label, kw in GD_CASES.items()}


# ================================================================== printing
_FORM_LABELS = {"loop": "Python loop", "vec": "vectorized NumPy", "jit": "numba JIT",
                "jit loop": "numba JIT, no BLAS"}


def _fmt_time(t):
    if t >= 1.0:
        return f"{t:8.3f} s "
    if t >= 1e-3:
        return f"{t * 1e3:8.3f} ms"
    return f"{t * 1e6:8.1f} us"


def format_table(experiments):
    lines = [f"{'equation':<50} {'form':<20} {'time':>11} {'speed-up':>10}  agrees with loop"]
    lines.append("-" * len(lines[0]))
    for exp in experiments:
        for i, (form, t) in enumerate(exp.times.items()):
            if form == "loop":
                agree = "(reference)"
            elif exp.bitwise[form]:
                agree = "yes, bit for bit"
            else:
                agree = f"{'yes' if exp.max_diff[form] <= exp.rtol else 'NO'} " \
                        f"(rel. diff {exp.max_diff[form]:.1e})"
            lines.append(f"{exp.name if i == 0 else '':<50} {_FORM_LABELS.get(form, form):<20} "
                         f"{_fmt_time(t):>11} {exp.speedup(form):>9.1f}x  {agree}")
        if exp.note:
            lines.append(f"{'':<50} note: {exp.note}")
    return "\n".join(lines)


def format_paths(paths, f=f_1d):
    labels = list(paths)
    head = f"{'step':>4}  " + "  ".join(f"{label:>18}" for label in labels)
    lines = ["1-D gradient descent on f(x) = x^2:  x_i = x_{i-1} - v * f'(x_{i-1})", head,
             "-" * len(head)]
    for i in range(len(next(iter(paths.values())))):
        lines.append(f"{i:>4}  " + "  ".join(f"{paths[k][i]:>18.6g}" for k in labels))
    lines.append("final f(x): " + ", ".join(f"{k}: {f(paths[k][-1]):.3g}" for k in labels))
    return "\n".join(lines)


def plot(experiments, paths, filename):
    """Bar chart of the speed-ups and the 1-D paths, saved to ``filename``."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'fastnn[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(experiments) + 2
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4))
    for ax, exp in zip(axes, experiments):
        forms = list(exp.times)
        ax.bar([_FORM_LABELS.get(f, f) for f in forms], [exp.times[f] for f in forms],
               color=["tab:red", "tab:blue", "tab:green", "tab:olive"][:len(forms)])
        ax.set_yscale("log")
        ax.set_ylabel("seconds (best of repeats, log scale)")
        ax.set_title(exp.name, fontsize=9)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        for i, f in enumerate(forms):
            ax.annotate(f"{exp.speedup(f):.0f}x", (i, exp.times[f]), ha="center",
                        va="bottom", fontsize=8)
    ax = axes[-2]
    xs = np.linspace(-5, 5, 201)
    ax.plot(xs, f_1d(xs), color="lightgray")
    for label, path in paths.items():
        ax.plot(path, f_1d(path), marker="o", markersize=3, label=label)
    ax.set_ylim(-1, 30)
    ax.set_title("1-D gradient descent on f(x) = x^2", fontsize=9)
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
    ax = axes[-1]
    for label, path in paths.items():
        ax.plot(np.arange(len(path)), path, marker="o", markersize=3, label=label)
    ax.axhline(0, color="lightgray")
    ax.set_title("x_i per step: too high oscillates, decay converges", fontsize=9)
    ax.set_xlabel("step i")
    ax.set_ylabel("x_i")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(filename, dpi=100)
    plt.close(fig)


# ============================================================ command line
def main(args):
    """``python -m fastnn lesson``: print the table and the 1-D paths; 0 if all forms agree."""
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        value = getattr(args, key, None)
        if value is not None:
            sizes[key] = value
    for key, value in sizes.items():
        if value < 1:
            raise SystemExit(f"fastnn lesson: --{key.replace('_', '-')}={value}: expected >= 1")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("fastnn lesson: --plot needs matplotlib: "
                             "pip install 'fastnn[plot]'") from None
    print("The lesson: the same equation as a Python loop, vectorized NumPy and numba JIT")
    with blas_threads(args.threads) as pinned:
        threads = (f"BLAS pinned to {args.threads} thread(s)" if pinned
                   else "BLAS threads not pinned (needs threadpoolctl)")
        print(f"best of {sizes['repeats']} run(s), JIT compiled before timing, {threads}\n")
        experiments = run_lesson(seed=args.seed, **sizes)
    print(format_table(experiments))
    print("\nThe course quotes about 481 ms for the Python for-loop over 1,000,000 elements "
          "and about 1.5 ms vectorized.")
    paths = gradient_descent_paths(steps=args.steps)
    print()
    print(format_paths(paths))
    if args.plot:
        plot(experiments, paths, args.plot)
        print(f"\nplot written to {args.plot}")
    if not all(exp.agree for exp in experiments):
        print("\nFAILED: some forms disagree with the loop")
        return 1
    return 0
