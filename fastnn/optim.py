"""Optimizers over lists of parameter arrays, with PyTorch's names, defaults and equations.

``opt = Adam(params, lr=1e-3)`` keeps references to ``params`` (any list of
C-contiguous float arrays of one dtype, such as ``model.parameters()``);
``opt.step(grads)`` updates them in place from a matching list of gradients. When the
arrays tile one contiguous buffer, as a model's do, one fused kernel call
(:mod:`fastnn.kernels.optim`) updates them all and the state arrays are flat too.

Every optimizer follows ``torch.optim``'s single-tensor path (the CPU default)
operation by operation; float64 trajectories match PyTorch 2.13 to 1e-10 relative
(the golden values in ``tests/fixtures/optim_golden.npz``). One departure: a state value
that would be subnormal (below the dtype's smallest normal number) is stored as zero,
since x86 computes with subnormals through microcode assists, tens of times slower
(:mod:`fastnn.kernels.optim`). :class:`Momentum` is the
lecture's exponentially weighted average instead.

One step, in Keras's order: check the gradients -> clip (by value, or by the global
norm with ``torch.nn.utils.clip_grad_norm_``'s coefficient
``min(max_norm / (total_norm + 1e-6), 1)``) -> weight decay -> update ->
``step_count += 1``. The learning rate is a float or a schedule ``step -> lr``
(:mod:`fastnn.schedules`), resolved once per step with the step count before the step.

Non-finite gradients. By default (``on_nonfinite='skip'``) a gradient with a NaN or
an infinity (or whose squared norm overflows float64) is not applied: the parameters,
the state and ``step_count`` stay as they were, ``skipped_steps`` counts it and a
``RuntimeWarning`` is issued, as PyTorch's ``GradScaler`` skips such steps.
``'raise'`` raises ``FloatingPointError`` instead, and ``'apply'`` skips the check (one
pass over the gradients fewer) and lets the NaN through, as ``torch.optim`` does.
Clipping by norm always pays for that pass, since it needs the norm.

The check is a pass of its own, before the update: the update cannot do it on the
way, since a NaN in the last element must leave the first untouched, and undoing
written elements would mean keeping a copy of the parameters and the state. The pass
reads only the gradient (one stream where Adam's update moves seven), prefetching
ahead as the updates do: for float32 gradients without ``clip_norm`` an integer max
over the exponent bits, otherwise the float64 sum of squares in eight vector lanes
(10M float32 on two threads, each right after an update: 0.76 and 0.9 ms, the Adam
update 3.8-4.2 ms). A 10M Adam step thus takes 1.2-1.3x the time of the update alone
with the check or with ``clip_norm``, and about the copy of its arrays with
``on_nonfinite='apply'`` (``benchmarks/test_bench_perf_optim.py``).

Threads: a step over at least ``fastnn._config.OPTIM_PARALLEL_MIN`` elements splits
over numba's threads once ``fastnn._config.set_num_threads(n)`` (or
``FASTNN_NUM_THREADS=n``) gave fastnn ``n > 1`` threads, which also pins BLAS to one
so that the two thread pools never spin against each other; by default steps are
serial.

The gradients given to ``step`` are never modified: clipping, ``maximize`` and weight
decay act on the values inside the kernel.
"""

import math
import operator
import warnings

import numpy as np

from . import _config
from ._config import resolve_backend
from .kernels.optim import (
    F32_EXPONENT,
    MAX_EXPONENT_KERNELS,
    OPTIMIZER_KERNELS,
    PARALLEL_KERNELS,
    PENALTY_KERNELS,
    SUMSQ_KERNELS,
    clip_coefficient,
)
from .params import flat_base

_NONFINITE = ("skip", "raise", "apply")


def _check_params(params):
    if isinstance(params, np.ndarray):
        params = [params]
    params = list(params)
    if not params:
        raise ValueError("params is empty: expected a list of float arrays to optimize")
    dtype = None
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise ValueError(f"params[{i}] is {type(p).__name__}"
                             f"{'' if not isinstance(p, np.ndarray) else ' of dtype ' + str(p.dtype)}"
                             "; expected a float NumPy array updated in place")
        if not p.flags.writeable:
            raise ValueError(f"params[{i}] is read-only; expected a writeable array")
        if not p.flags.c_contiguous:
            raise ValueError(f"params[{i}] is not C-contiguous; expected an array that can "
                             "be updated in place through a flat view")
        if dtype is None:
            dtype = p.dtype
        elif p.dtype != dtype:
            raise ValueError(f"params[{i}] has dtype {p.dtype} but params[0] has {dtype}; "
                             "expected one dtype")
    return params


def _check_lr(lr):
    if callable(lr):
        return lr
    return _check_float("lr", lr)


def _check_float(name, value, low=0.0, high=math.inf, high_open=False):
    """``value`` as a float in [low, high] (or [low, high)), else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}={value!r}: expected a number")
    value = float(value)
    ok = math.isfinite(value) and value >= low and (value < high if high_open else value <= high)
    if not ok:
        right = ")" if high_open else "]"
        raise ValueError(f"{name}={value!r}: expected a finite number in [{low}, {high}{right}")
    return value


def _check_betas(betas):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas={betas!r}: expected a pair (beta1, beta2)") from None
    return (_check_float("betas[0]", b1, 0.0, 1.0, high_open=True),
            _check_float("betas[1]", b2, 0.0, 1.0, high_open=True))


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r}: expected True or False")
    return bool(value)


def _check_clipping(clip_value, clip_norm):
    if clip_value is not None and clip_norm is not None:
        raise ValueError(f"clip_value={clip_value!r} and clip_norm={clip_norm!r}: give one "
                         "clipping mode, not both")
    if clip_value is not None:
        clip_value = _check_float("clip_value", clip_value)
        if clip_value == 0:
            raise ValueError("clip_value=0.0: expected a bound > 0")
    if clip_norm is not None:
        clip_norm = _check_float("clip_norm", clip_norm)
    return clip_value, clip_norm


def global_norm(grads, backend="jit"):
    """The 2-norm of all ``grads`` together, as if concatenated (computed in float64)."""
    kernel = SUMSQ_KERNELS[resolve_backend(backend)]
    return math.sqrt(sum(kernel(np.ascontiguousarray(g).reshape(-1)) for g in grads))


def clip_grad_norm_(grads, max_norm, backend="jit"):
    """Scale ``grads`` in place so that their global 2-norm is at most ``max_norm``;
    returns the norm before clipping, like ``torch.nn.utils.clip_grad_norm_``.

    The optimizers' ``clip_norm=`` does the same inside the update without touching
    the gradient arrays."""
    max_norm = _check_float("max_norm", max_norm)
    grads = list(grads)
    total = global_norm(grads, backend)
    coef = clip_coefficient(total, max_norm)
    for g in grads:
        g *= coef
    return total


def clip_grad_value_(grads, clip_value):
    """Clamp every element of ``grads`` to ``[-clip_value, clip_value]`` in place, like
    ``torch.nn.utils.clip_grad_value_``."""
    clip_value = _check_float("clip_value", clip_value)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)


class Optimizer:
    """Base class: checks, clipping, the non-finite policy, the state and the dispatch.

    A subclass sets ``kernel`` (a key of ``OPTIMIZER_KERNELS``), lists its state
    arrays in ``_slots`` (``name -> used``), and defines ``_scalars(lr)``: the
    kernel's scalar arguments for the coming step, computed once in Python.

    Parameters
    ----------
    params : list of ndarray
        C-contiguous float arrays of one dtype, updated in place.
    lr : float or callable
        Learning rate, or a schedule ``step -> lr`` (:mod:`fastnn.schedules`).
    maximize : bool
        Ascend the objective: the gradient's sign is flipped.
    clip_value : float, optional
        Clamp each gradient element to ``[-clip_value, clip_value]``.
    clip_norm : float, optional
        Scale the gradients so that their global 2-norm is at most ``clip_norm``
        (one norm over all params, ``clip_grad_norm_``'s semantics).
    on_nonfinite : {'skip', 'raise', 'apply'}
        What a NaN or infinite gradient does (see the module docstring).
    backend : {'loop', 'vec', 'jit'}
        Which form of the kernel runs.

    Attributes
    ----------
    params : list of ndarray
    step_count : int
        Steps taken (skipped steps excluded); the schedule's argument and PyTorch's
        ``step`` minus one.
    skipped_steps : int
        Steps skipped because of a non-finite gradient.
    state : dict of str -> ndarray
        Flat state arrays over all params in order (PyTorch's names).
    """

    kernel = None
    #: the subclass's own constructor arguments, for ``get_config``
    _hyper = ()
    _init_value = 0.0

    def __init__(self, params, lr, *, maximize=False, clip_value=None, clip_norm=None,
                 on_nonfinite="skip", backend="jit"):
        self.params = _check_params(params)
        self.lr = _check_lr(lr)
        self.maximize = _check_bool("maximize", maximize)
        self.clip_value, self.clip_norm = _check_clipping(clip_value, clip_norm)
        if on_nonfinite not in _NONFINITE:
            raise ValueError(f"on_nonfinite={on_nonfinite!r}: expected one of {_NONFINITE}")
        self.on_nonfinite = on_nonfinite
        self.backend = resolve_backend(backend)
        self._kernel = OPTIMIZER_KERNELS[self.kernel][self.backend]
        self._sumsq = SUMSQ_KERNELS[self.backend]
        self._max_exponent = MAX_EXPONENT_KERNELS[self.backend]
        jit = self.backend == "jit"
        self._kernel_parallel = PARALLEL_KERNELS[self.kernel] if jit else None
        self._sumsq_parallel = PARALLEL_KERNELS["sumsq"] if jit else None
        self._max_exponent_parallel = PARALLEL_KERNELS["max_exponent"] if jit else None
        sizes = [p.size for p in self.params]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        size = int(self._offsets[-1])
        dtype = self.params[0].dtype
        self.state = {name: np.zeros(size if used else 0, dtype=dtype)
                      for name, used in self._slots().items()}
        self._tile()
        self.zero_state()

    def _tile(self):
        """The flat view of the params (None if they do not tile one buffer) and the
        per-param views of the flat state, for params that do not. Forgets the gradient
        arrays seen last (``_chunks``)."""
        self._grads_seen = None
        self._flat = flat_base(self.params)
        self._state_views = {
            name: [arr[a:b] if arr.size else arr
                   for a, b in zip(self._offsets[:-1], self._offsets[1:])]
            for name, arr in self.state.items()}

    def __setstate__(self, state):
        # pickle copies every view on its own; make them views of the flat state again
        self.__dict__.update(state)
        self._tile()

    # ------------------------------------------------------------- subclass API
    def _slots(self):
        return {}

    def _scalars(self, lr):
        raise NotImplementedError

    def _reset_scalars(self):
        """Reset scalar state (e.g. NAdam's product of momenta)."""

    def _scalar_state(self):
        return {}

    def _set_scalar_state(self, d):
        pass

    # ------------------------------------------------------------------ state
    def zero_state(self):
        """Start afresh: state arrays at their initial values, ``step_count = 0``.
        The parameters and the learning rate are left as they are."""
        for arr in self.state.values():
            arr.fill(self._init_value)
        self.step_count = 0
        self.skipped_steps = 0
        self._reset_scalars()

    def state_dict(self):
        """A dict of plain values and array copies: the optimizer's name, ``step_count``,
        ``skipped_steps``, ``lr`` (None when it is a schedule: a schedule is a function of
        ``step_count``, which is saved), ``hyperparameters``, ``state`` and scalar state."""
        return {
            "optimizer": type(self).__name__,
            "step_count": self.step_count,
            "skipped_steps": self.skipped_steps,
            "lr": None if callable(self.lr) else self.lr,
            "hyperparameters": self.get_config(),
            "state": {name: arr.copy() for name, arr in self.state.items()},
            **self._scalar_state(),
        }

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` returned, copying into the existing arrays.
        The learning rate is restored when it was a float; other hyperparameters stay
        those given to the constructor."""
        name = state_dict.get("optimizer")
        if name != type(self).__name__:
            raise ValueError(f"state_dict is for optimizer {name!r}, not {type(self).__name__}")
        saved = state_dict["state"]
        if set(saved) != set(self.state):
            raise ValueError(f"state_dict['state'] has {sorted(saved)}; expected "
                             f"{sorted(self.state)}")
        for key, arr in self.state.items():
            src = np.asarray(saved[key])
            if src.shape != arr.shape:
                raise ValueError(f"state_dict['state'][{key!r}] has shape {src.shape}; "
                                 f"expected {arr.shape}")
        for key, arr in self.state.items():
            arr[...] = saved[key]
        self.step_count = int(state_dict["step_count"])
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))
        if state_dict.get("lr") is not None:
            self.lr = _check_lr(state_dict["lr"])
        self._set_scalar_state(state_dict)

    def get_config(self):
        """The hyperparameters, as keyword arguments of the constructor (not ``lr``)."""
        return {**{name: getattr(self, name) for name in self._hyper},
                "maximize": self.maximize, "clip_value": self.clip_value,
                "clip_norm": self.clip_norm, "on_nonfinite": self.on_nonfinite}

    # ------------------------------------------------------------------- step
    def current_lr(self):
        """The learning rate of the next step."""
        if callable(self.lr):
            return _check_float("lr (from the schedule)", self.lr(self.step_count))
        return self.lr

    def _check_grads(self, grads):
        if isinstance(grads, np.ndarray):
            grads = [grads]
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"grads has {len(grads)} arrays for {len(self.params)} params; "
                             "expected one gradient per parameter, in the same order")
        for i, (g, p) in enumerate(zip(grads, self.params)):
            if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype != p.dtype:
                got = (f"{g.shape} {g.dtype}" if isinstance(g, np.ndarray)
                       else type(g).__name__)
                raise ValueError(f"grads[{i}] is {got}; expected shape {p.shape} and dtype "
                                 f"{p.dtype} like params[{i}]")
        return grads

    def _chunks(self, grads):
        """Checked gradients as (param, grad, state arrays) triples: one over the flat
        buffer when both the params and the grads tile one, else one per parameter."""
        # A model hands over the same gradient arrays every step: once they were checked
        # and their flat buffer found (array-interface dicts, ~20 us, more than a small
        # network's whole update), the triple is reused while the same arrays come.
        seen = self._grads_seen
        if (seen is not None and type(grads) is list and len(grads) == len(seen[0])
                and all(map(operator.is_, grads, seen[0]))):
            return seen[1]
        grads = self._check_grads(grads)
        gflat = flat_base(grads) if self._flat is not None else None
        if gflat is not None:
            chunks = [(self._flat, gflat, tuple(self.state.values()))]
            self._grads_seen = (grads, chunks)
            return chunks
        return [(p.reshape(-1), np.ascontiguousarray(g).reshape(-1),
                 tuple(views[k] for views in self._state_views.values()))
                for k, (p, g) in enumerate(zip(self.params, grads))]

    def step(self, grads):
        """Update the parameters in place from ``grads`` (one array per parameter).

        Returns True if the step was applied, False if it was skipped because a
        gradient was not finite (``on_nonfinite='skip'``)."""
        chunks = self._chunks(grads)
        gscale, clip = self._sign_and_clip()
        check = self._gradient_check()
        if check is not None:
            sumsq = self._gradient_sumsq(chunks, check)
            if not math.isfinite(sumsq) and self.on_nonfinite != "apply":
                self._nonfinite_gradient(stacklevel=2)
                return False
            if self.clip_norm is not None:
                gscale *= clip_coefficient(math.sqrt(sumsq), self.clip_norm)
        # the kernels compute in the buffer's dtype: every float scalar converted once
        cast = self.params[0].dtype.type
        # (a list comprehension: a generator expression per step leaves tracemalloc-visible
        # memory behind in CPython 3.11, which tests/test_allocations.py would flag)
        scalars = [cast(x) if isinstance(x, float) else x for x in
                   (gscale, clip, *self._scalars(self.current_lr()))]
        for p, g, state in chunks:
            self._pick(self._kernel, self._kernel_parallel, p.size)(p, g, *state, *scalars)
        self.step_count += 1
        return True

    def _sign_and_clip(self):
        """The kernel's first two scalars: ``gscale`` before any norm clipping (-1 to
        maximize) and ``clip`` (inf: no value clipping)."""
        return (-1.0 if self.maximize else 1.0,
                math.inf if self.clip_value is None else self.clip_value)

    def _nonfinite_gradient(self, stacklevel):
        """The gradient of step ``step_count`` has a NaN or an infinity and the step is not
        applied: raise (``on_nonfinite='raise'``), or count it skipped and warn
        (``stacklevel`` as the caller would give ``warnings.warn``)."""
        if self.on_nonfinite == "raise":
            raise FloatingPointError(
                f"step {self.step_count}: the gradient has a NaN or an infinity")
        self.skipped_steps += 1
        warnings.warn(f"{type(self).__name__}: skipped step {self.step_count}, the gradient "
                      "has a NaN or an infinity; parameters and state left unchanged",
                      RuntimeWarning, stacklevel=stacklevel + 1)

    def _scalar_rows(self, n_steps):
        """What :meth:`step` passes its kernel after the arrays, for each of the next
        ``n_steps`` steps: ``gscale`` (the sign of ``maximize``; a clipped norm scales it
        later), ``clip`` and the step's scalars, as rows of an array in the parameters'
        dtype (flags as 0 and 1). Also the scalar state after each step (NAdam's product
        of momenta), for :meth:`_advance`. Leaves the optimizer as it was."""
        count, states = self.step_count, [self._scalar_state()]
        sign, clip = self._sign_and_clip()
        rows = []
        for k in range(n_steps):
            self.step_count = count + k
            rows.append((sign, clip, *self._scalars(self.current_lr())))
            states.append(self._scalar_state())
        self.step_count = count
        self._set_scalar_state(states[0])
        return np.array(rows, dtype=self.params[0].dtype).reshape(n_steps, -1), states

    def _advance(self, steps, states):
        """Account for ``steps`` steps applied from :meth:`_scalar_rows`' rows."""
        self.step_count += steps
        self._set_scalar_state(states[steps])

    def _gradient_check(self):
        """How :meth:`step` checks the gradients before an update: None (not at all:
        ``on_nonfinite='apply'`` and no ``clip_norm``), ``'exponent'`` (finite or not) or
        ``'sumsq'`` (the squared norm, which clipping needs)."""
        if self.clip_norm is None and self.on_nonfinite == "apply":
            return None
        if self.clip_norm is None and self.params[0].dtype == np.float32:
            return "exponent"
        return "sumsq"

    def _gradient_sumsq(self, chunks, check):
        """The gradients' squared norm (float64), or only 0.0 / inf for the ``check``
        ``'exponent'`` (:meth:`_gradient_check`).

        A pass of its own over the gradients, before any write: a step skipped for a
        NaN found late must leave everything untouched, and clipping needs the norm
        before the first update. It reads one array where the update reads three or
        four and writes two or three. Without clipping, float32 gradients take the
        integer exponent check (vectorized, a third of the time of the float64 sum),
        which says the same: their squared norm cannot overflow float64."""
        if check == "exponent":
            for _, g, _ in chunks:
                kernel = self._pick(self._max_exponent, self._max_exponent_parallel, g.size)
                if kernel(g.view(np.uint32), F32_EXPONENT) == F32_EXPONENT:
                    return math.inf
            return 0.0
        return sum([self._pick(self._sumsq, self._sumsq_parallel, g.size)(g)
                    for _, g, _ in chunks])

    @staticmethod
    def _pick(serial, parallel, size):
        """The kernel's form split over numba's threads for ``size`` elements at and above
        ``_config.OPTIM_PARALLEL_MIN`` (when there are threads to split over), else the
        serial one: both give the same bits."""
        if parallel is not None and size >= _config.OPTIM_PARALLEL_MIN and _config.threads() > 1:
            return parallel
        return serial

    def __repr__(self):
        lr = self.lr if not callable(self.lr) else repr(self.lr)
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}(lr={lr}, {args}, backend={self.backend!r})"


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's momentum and Nesterov momentum.

    ``g := g + wd theta``; with momentum ``v := mu v + (1 - dampening) g`` (``v := g``
    on the first step) and ``g := g + mu v`` (Nesterov) or ``g := v``;
    ``theta := theta - lr g``. PyTorch's momentum is a sum, not the lecture's average:
    see :class:`Momentum`.

    Parameters
    ----------
    params : list of ndarray
    lr : float or callable, default 1e-3
    momentum : float, default 0
    dampening : float in [0, 1], default 0
    weight_decay : float, default 0
        L2 penalty coefficient added to the gradient (``g + wd theta``), on every param.
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening = 0``.
    maximize, clip_value, clip_norm, on_nonfinite, backend
        See :class:`Optimizer`.
    """

    kernel = "sgd"
    _hyper = ("momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, **kwargs):
        self.momentum = _check_float("momentum", momentum)
        self.dampening = _check_float("dampening", dampening, 0.0, 1.0)
        self.weight_decay = _check_float("weight_decay", weight_decay)
        self.nesterov = _check_bool("nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov=True with momentum={momentum!r} and dampening="
                             f"{dampening!r}: Nesterov momentum needs momentum > 0 and "
                             "dampening = 0")
        super().__init__(params, lr, **kwargs)

    def _slots(self):
        return {"momentum_buffer": self.momentum != 0}

    def _scalars(self, lr):
        return (lr, self.weight_decay, self.momentum, 1.0 - self.dampening, self.nesterov,
                self.step_count == 0)


class Momentum(Optimizer):
    """Gradient descent with momentum as the lecture teaches it: an exponentially
    weighted average of the gradients, optionally bias-corrected.

    ``V := beta V + (1 - beta) dW``; ``W := W - lr V / (1 - beta^t)`` with
    ``bias_correction=True``, else ``W := W - lr V``.

    This differs from ``SGD(momentum=beta)``, PyTorch's form, which sums
    (``v := beta v + g``, ``v := g`` on the first step) so that its steps are
    ``1 / (1 - beta)`` times larger at the same lr. ``SGD(momentum=beta,
    dampening=1 - beta)`` averages like this class but starts from ``v := g``, which
    is what bias correction achieves on the first step.

    Parameters
    ----------
    params : list of ndarray
    lr : float or callable, default 0.01
    beta : float in [0, 1), default 0.9
    bias_correction : bool, default False
    weight_decay : float, default 0
    maximize, clip_value, clip_norm, on_nonfinite, backend
        See :class:`Optimizer`.
    """

    kernel = "momentum"
    _hyper = ("beta", "bias_correction", "weight_decay")

    def __init__(self, params, lr=0.01, beta=0.9, bias_correction=False, weight_decay=0.0,
                 **kwargs):
        self.beta = _check_float("beta", beta, 0.0, 1.0, high_open=True)
        self.bias_correction = _check_bool("bias_correction", bias_correction)
        self.weight_decay = _check_float("weight_decay", weight_decay)
        super().__init__(params, lr, **kwargs)

    def _slots(self):
        return {"velocity": True}

    def _scalars(self, lr):
        t = self.step_count + 1
        bc = 1.0 - self.beta ** t if self.bias_correction else 1.0
        return (lr, self.weight_decay, self.beta, 1.0 - self.beta, bc)


class Adagrad(Optimizer):
    """AdaGrad: ``G := G + g^2``; ``theta := theta - clr g / (sqrt(G) + eps)`` with
    ``clr = lr / (1 + (t - 1) lr_decay)``.

    Parameters
    ----------
    params : list of ndarray
    lr : float or callable, default 0.01
    lr_decay : float, default 0
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
        Initial value of ``G`` (PyTorch's ``sum`` state).
    eps : float, default 1e-10
    maximize, clip_value, clip_norm, on_nonfinite, backend
        See :class:`Optimizer`.
    """

    kernel = "adagrad"
    _hyper = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, **kwargs):
        self.lr_decay = _check_float("lr_decay", lr_decay)
        self.weight_decay = _check_float("weight_decay", weight_decay)
        self._init_value = self.initial_accumulator_value = _check_float(
            "initial_accumulator_value", initial_accumulator_value)
        self.eps = _check_float("eps", eps)
        super().__init__(params, lr, **kwargs)

    def _slots(self):
        return {"sum": True}

    def _scalars(self, lr):
        clr = lr / (1 + self.step_count * self.lr_decay)
        return (clr, self.weight_decay, self.eps)


class RMSprop(Optimizer):
    """RMSprop: ``S := alpha S + (1 - alpha) g^2``; ``theta := theta - lr g / (sqrt(S) + eps)``.

    The lecture's ``beta`` is PyTorch's ``alpha``. ``centered`` divides by the
    estimated standard deviation ``sqrt(S - M^2)`` (``M`` the average gradient);
    ``momentum`` keeps ``B := mu B + g / d`` and steps by ``lr B``.

    Parameters
    ----------
    params : list of ndarray
    lr : float or callable, default 0.01
    alpha : float in [0, 1], default 0.99
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
    maximize, clip_value, clip_norm, on_nonfinite, backend
        See :class:`Optimizer`.
    """

    kernel = "rmsprop"
    _hyper = ("alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, centered=False, **kwargs):
        self.alpha = _check_float("alpha", alpha, 0.0, 1.0)
        self.eps = _check_float("eps", eps)
        self.weight_decay = _check_float("weight_decay", weight_decay)
        self.momentum = _check_float("momentum", momentum)
        self.centered = _check_bool("centered", centered)
        super().__init__(params, lr, **kwargs)

    def _slots(self):
        return {"square_avg": True, "grad_avg": self.centered,
                "momentum_buffer": self.momentum > 0}

    def _scalars(self, lr):
        w = 1.0 - self.alpha
        # torch's lerp computes 1 - w itself; 1 - (1 - alpha) need not be alpha
        return (lr, self.weight_decay, self.alpha, w, 1.0 - w, self.eps, self.momentum,
                self.centered)


class Adadelta(Optimizer):
    """Adadelta: ``S := rho S + (1 - rho) g^2``; ``dx = sqrt(D + eps) / sqrt(S + eps) g``;
    ``D := rho D + (1 - rho) dx^2``; ``theta := theta - lr dx`` (eps inside both roots).

    Parameters
    ----------
    params : list of ndarray
    lr : float or callable, default 1.0
    rho : float in [0, 1], default 0.9
    eps : float, default 1e-6
    weight_decay : float, default 0
    maximize, clip_value, clip_norm, on_nonfinite, backend
        See :class:`Optimizer`.
    """

    kernel = "adadelta"
    _hyper = ("rho", "eps", "weight_decay")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, **kwargs):
        self.rho = _check_float("rho", rho, 0.0, 1.0)
        self.eps = _check_float("eps", eps)
        self.weight_decay = _check_float("weight_decay", weight_decay)
        super().__init__(params, lr, **kwargs)

    def _slots(self):
        return {"square_avg": True, "acc_delta": True}

    def _scalars(self, lr):
        return (lr, self.weight_decay, self.rho, 1.0 - self.rho, self.eps)


class Adam(Optimizer):
    """Adam: momentum and RMSprop with bias correction.

    ``m := beta1 m + (1 - beta1) g``; ``v := beta2 v + (1 - beta2) g^2``;
    ``theta := theta - lr m_hat / (sqrt(v_hat) + eps)`` with
    ``m_hat = m / (1 - beta1^t)``, ``v_hat = v / (1 - beta2^t)``. PyTorch's (and
    the paper's) eps sits outside the root; the lecture writes it once inside.

    Parameters
    ----------
    params : list of ndarray
    lr : float or callable, default 1e-3
    betas : (float, float) in [0, 1), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
        Coupled (``g + wd theta``, an L2 term through the moments), or decoupled
        (``theta := (1 - lr wd) theta`` before the update) with
        ``decoupled_weight_decay=True``, which is :class:`AdamW`.
    amsgrad : bool, default False
        Divide by the running maximum of ``v`` (AMSGrad).
    decoupled_weight_decay : bool, default False
    maximize, clip_value, clip_norm, on_nonfinite, backend
        See :class:`Optimizer`.
    """

    kernel = "adam"
    _hyper = ("betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, decoupled_weight_decay=False, **kwargs):
        self.betas = _check_betas(betas)
        self.eps = _check_float("eps", eps)
        self.weight_decay = _check_float("weight_decay", weight_decay)
        self.amsgrad = _check_bool("amsgrad", amsgrad)
        self.decoupled_weight_decay = _check_bool("decoupled_weight_decay",
                                                  decoupled_weight_decay)
        super().__init__(params, lr, **kwargs)

    def _slots(self):
        return {"exp_avg": True, "exp_avg_sq": True, "max_exp_avg_sq": self.amsgrad}

    def _decay(self, lr):
        """(multiplier of theta, coupled weight decay) for this step."""
        if self.decoupled_weight_decay:
            return 1 - lr * self.weight_decay, 0.0
        return 1.0, self.weight_decay

    def _scalars(self, lr):
        beta1, beta2 = self.betas
        t = float(self.step_count + 1)
        step_size = lr / (1 - beta1 ** t)
        inv_bc2_sqrt = 1 / (1 - beta2 ** t) ** 0.5
        decay, wd = self._decay(lr)
        return (decay, wd, 1 - beta1, 1 - (1 - beta1), beta2, 1 - beta2, step_size, inv_bc2_sqrt,
                self.eps, self.amsgrad)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter):
    ``theta := (1 - lr wd) theta`` before the Adam update. Default ``weight_decay=0.01``.

    Parameters as :class:`Adam`, without ``decoupled_weight_decay`` (always True).
    """

    _hyper = ("betas", "eps", "weight_decay", "amsgrad")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, **kwargs):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad,
                         decoupled_weight_decay=True, **kwargs)


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm: ``u := max(beta2 u, |g| + eps)``;
    ``theta := theta - lr / (1 - beta1^t) m / u``.

    Parameters
    ----------
    params : list of ndarray
    lr : float or callable, default 2e-3
    betas : (float, float) in [0, 1), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    maximize, clip_value, clip_norm, on_nonfinite, backend
        See :class:`Optimizer`.
    """

    kernel = "adamax"
    _hyper = ("betas", "eps", "weight_decay")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 **kwargs):
        self.betas = _check_betas(betas)
        self.eps = _check_float("eps", eps)
        self.weight_decay = _check_float("weight_decay", weight_decay)
        super().__init__(params, lr, **kwargs)

    def _slots(self):
        return {"exp_avg": True, "exp_inf": True}

    def _scalars(self, lr):
        beta1, beta2 = self.betas
        clr = lr / (1 - beta1 ** float(self.step_count + 1))
        return (self.weight_decay, 1 - beta1, 1 - (1 - beta1), beta2, self.eps, clr)


class NAdam(Adam):
    """NAdam, Adam with Nesterov momentum (Dozat), with PyTorch's momentum schedule
    ``mu_t = beta1 (1 - 0.5 * 0.96^(t momentum_decay))``.

    Parameters
    ----------
    params : list of ndarray
    lr : float or callable, default 2e-3
    betas : (float, float) in [0, 1), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum_decay : float, default 4e-3
    decoupled_weight_decay : bool, default False
        NAdamW when True.
    maximize, clip_value, clip_norm, on_nonfinite, backend
        See :class:`Optimizer`.
    """

    kernel = "nadam"
    _hyper = ("betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, **kwargs):
        self.momentum_decay = _check_float("momentum_decay", momentum_decay)
        super().__init__(params, lr, betas, eps, weight_decay, False,
                         decoupled_weight_decay, **kwargs)

    def _slots(self):
        return {"exp_avg": True, "exp_avg_sq": True}

    def _reset_scalars(self):
        self.mu_product = 1.0

    def _scalar_state(self):
        return {"mu_product": self.mu_product}

    def _set_scalar_state(self, d):
        self.mu_product = float(d["mu_product"])

    def _scalars(self, lr):
        beta1, beta2 = self.betas
        t = float(self.step_count + 1)
        inv_bc2_sqrt = 1 / (1 - beta2 ** t) ** 0.5
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (t * self.momentum_decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * self.momentum_decay)))
        # _scalars runs once per applied step, right before the kernel
        self.mu_product *= mu
        mu_product_next = self.mu_product * mu_next
        c_grad = lr * (1.0 - mu) / (1.0 - self.mu_product)
        c_avg = (lr * mu_next) / (1.0 - mu_product_next)
        decay, wd = self._decay(lr)
        return (decay, wd, 1 - beta1, 1 - (1 - beta1), beta2, 1 - beta2, inv_bc2_sqrt,
                self.eps, c_grad, c_avg)


#: name -> optimizer class, for ``fit(optimizer='adam')`` and the command line.
OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adadelta": Adadelta,
    "adam": Adam,
    "adamw": AdamW,
    "adamax": Adamax,
    "nadam": NAdam,
}


def get_optimizer(name, params, **kwargs):
    """An optimizer from its name (``'sgd'``, ``'adam'``, ...; see ``OPTIMIZERS``) over
    ``params``, with ``kwargs`` for its constructor."""
    key = name.lower() if isinstance(name, str) else None
    if key not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}: expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](params, **kwargs)


class WeightPenalty:
    """The lecture's L1 and L2 loss terms on the weights (not the biases).

    ``J += lambda2 / (2m) sum W^2 + lambda1 / m sum |W|`` and
    ``dW += lambda2 / m W + lambda1 / m sign(W)``, with m the number of samples in the
    batch (scikit-learn's MLP convention). Built once from the flat buffer's layout;
    a call is one kernel pass over the weights' index ranges, allocating nothing.

    Parameters
    ----------
    l1, l2 : float >= 0
        lambda1 and lambda2.
    offsets : array of int
        Start of each parameter in the flat buffer, then the total size.
    regularized : list of bool
        Which parameters are weights.
    backend : {'loop', 'vec', 'jit'}
    """

    def __init__(self, l1, l2, offsets, regularized, backend="jit"):
        self.l1 = _check_float("l1", l1)
        self.l2 = _check_float("l2", l2)
        idx = [k for k, reg in enumerate(regularized) if reg]
        self.starts = np.array([offsets[k] for k in idx], dtype=np.int64)
        self.stops = np.array([offsets[k + 1] for k in idx], dtype=np.int64)
        self._kernel = PENALTY_KERNELS[resolve_backend(backend)]

    def __bool__(self):
        return bool(self.l1 or self.l2)

    def __call__(self, param, grad, m):
        """Add the penalty's gradient to ``grad`` (flat) and return its value."""
        return self._kernel(param, grad, self.starts, self.stops, self.l1 / m, self.l2 / m)
