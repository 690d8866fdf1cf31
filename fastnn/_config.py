"""The one place for numba flags, the default dtype and thread counts.

Every kernel module compiles through :func:`jit` (or :func:`jit_parallel`), so the
flags below are the only ones in the package. Each can be overridden by an
environment variable read once, at import:

=====================  =========  ===================================================
variable               default    meaning
=====================  =========  ===================================================
FASTNN_FASTMATH        0          LLVM fast-math (reassociation, FMA contraction).
                                  Off by default so that the loop form run by Python
                                  and its JIT compilation agree to the bit.
FASTNN_CACHE           1          Cache compiled kernels on disk (``__pycache__``
                                  next to the sources, or ``NUMBA_CACHE_DIR``), so a
                                  second process does not compile again.
FASTNN_DTYPE           float32    Default floating dtype of models and data.
FASTNN_NUM_THREADS     (numba's)  Threads for numba's parallel kernels: calls
                                  :func:`set_num_threads` at import (see below).
FASTNN_PARALLEL_MIN    262144     Elements below which a :func:`jit_sized` kernel runs
                                  its serial compilation (dropout, uniform, batch
                                  norm in training) even with
                                  threads given: a parallel region costs more than it
                                  gives there (see :data:`PARALLEL_MIN`).
=====================  =========  ===================================================

``FASTNN_PREFETCH`` (default 1, but 0 on AMD Zen): whether the optimizers' update loops
over arrays of 1M elements and more ask the CPU for their lines ahead
(:data:`PREFETCH`). Read at import and compiled into the kernels, which the disk cache
keeps: after changing it, clear the cache (``fastnn/kernels/__pycache__``) or point
``NUMBA_CACHE_DIR`` elsewhere.

``FASTNN_OPTIM_PARALLEL_MIN`` (default 262144): elements from which an optimizer step,
and its check of the gradient, run on numba's threads (:mod:`fastnn.optim`), once
threads were given with ``FASTNN_NUM_THREADS`` or :func:`set_num_threads`.

``FASTNN_BLAS_SERIAL_BELOW`` (default 4000000): multiply-adds (``m n k``) of a network's
largest product below which ``fit`` holds BLAS to one thread during each epoch
(:data:`BLAS_SERIAL_BELOW`).

Threads. numba's pool and BLAS's (OpenBLAS) both busy-wait after each call, so a
training step, which alternates matrix products and elementwise kernels, must not have
both multi-threaded: :func:`set_num_threads` (or ``FASTNN_NUM_THREADS``) gives fastnn's
kernels ``n`` threads and pins BLAS to one; without it the optimizers' kernels are
serial and BLAS keeps its threads (:func:`jit_sized` kernels split only from
``FASTNN_PARALLEL_MIN`` elements).

``NUMBA_DISABLE_JIT=1`` turns every JIT form into the plain Python loop it was
compiled from, so the whole suite can run without compiling anything.
"""

import contextlib
import os
import types

import numba
import numpy as np


def _env_flag(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: expected 0/1, true/false, yes/no or on/off")


FASTMATH = _env_flag("FASTNN_FASTMATH", False)
CACHE = _env_flag("FASTNN_CACHE", True)

#: Flags of every serial kernel. ``error_model="numpy"`` lets division by zero give
#: inf/nan like NumPy instead of raising, which also lets LLVM vectorize divisions.
JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH, error_model="numpy")

#: Flags of the kernels that split their outer loop over numba's threads.
JIT_PARALLEL = dict(JIT, parallel=True)


def _host_cpu():
    """LLVM's name for this machine's CPU (``rocketlake``, ``znver4``...)."""
    from llvmlite import binding

    return binding.get_host_cpu_name()


#: Whether the optimizers' update loops prefetch their arrays ahead, from
#: ``kernels.optim.PREFETCH_MIN`` elements (see that module's docstring). Measured, 10M
#: float32 Adam on 2 threads against a 7-stream copy over the same arrays: on Intel
#: (``rocketlake``) the hardware prefetchers alone left it at 1.16-1.39x the copy, with the
#: prefetch 0.99-1.08x; on AMD Zen 4 (``znver4``) the prefetching blocks took 1.52-1.59x
#: the copy while memory streamed fast (the copy 2.3 ms) and 1.05-1.08x while it streamed
#: slowly (4.1 ms), without them 1.06-1.12x and 1.00-1.03x (and on the Zen machine of
#: 2026-11-25 every update had run at 0.96-1.02x its copy before there was a prefetch).
PREFETCH = _env_flag("FASTNN_PREFETCH", not _host_cpu().startswith("znver"))

DEFAULT_DTYPE = np.dtype(os.environ.get("FASTNN_DTYPE", "float32"))
if DEFAULT_DTYPE not in (np.float32, np.float64):
    raise ValueError(f"FASTNN_DTYPE={DEFAULT_DTYPE}: expected float32 or float64")

#: Elements from which an optimizer step (and its gradient check) runs on numba's
#: threads, once :func:`set_num_threads` has given them (see the table above).
OPTIM_PARALLEL_MIN = int(os.environ.get("FASTNN_OPTIM_PARALLEL_MIN", "") or 262144)

#: Multiply-adds (``m n k``) of a network's largest matrix product below which ``fit``
#: runs each epoch with BLAS on one thread (``_epoch.blas_for_batch``; needs threadpoolctl). OpenBLAS splits
#: products from 262144 multiply-adds, and below about 4M its second thread costs more
#: than it gives: on the project's 2 cores, one epoch with BLAS on 1 / 2 threads took
#: 3.63 / 4.42 ms for 40-100-100-10 (batch 100, largest product 1M), 11.8 / 15.0 ms for
#: 64-128-128-10 (batch 128, 2.1M), 25.1 / 25.9 ms for 100-200-200-10 (4M), 49.9 /
#: 48.1 ms for 100-300-300-10 (9M), 76.5 / 62.6 ms for 784-256-128-10 (25.7M).
BLAS_SERIAL_BELOW = int(os.environ.get("FASTNN_BLAS_SERIAL_BELOW", "") or 4_000_000)

#: OpenBLAS runs a product of fewer multiply-adds than this on one thread whatever its
#: setting (``interface/gemm.c``: 65536 x ``GEMM_MULTITHREAD_THRESHOLD``, 4 by default):
#: below it there is nothing for the hold above to change, and it is not paid for.
BLAS_SPLIT_FROM = 262144

_num_threads = 1  # threads fastnn was given; 1 until set_num_threads
_blas_pin = None  # the threadpoolctl limit set_num_threads(n > 1) put on BLAS
_lent = None  # what threads_to_blas put aside, while it runs


def set_num_threads(n):
    """Give fastnn's large elementwise kernels (optimizer steps) ``n`` threads.

    numba's pool gets ``n`` threads and, for ``n > 1``, every BLAS loaded (numpy's and
    scipy's OpenBLAS, the one numba's ``np.dot`` calls; needs threadpoolctl) is pinned
    to one thread. A training step alternates matrix products and elementwise kernels,
    and both pools busy-wait after each call: with two threads each on two cores they
    took turns spinning on each other's cores (a 10M Adam step after a 128x784 @
    784x256 product: 16 ms instead of 5.4 ms). So the threads go to one pool at a time:
    ``n = 1`` (the default) keeps every fastnn kernel serial and gives BLAS back the
    threads it had. With ``n > 1``, ``fit`` also splits each mini-batch of a stack of
    Dense layers into ``n`` parts that run side by side (``fastnn/_epoch.py``); an epoch
    that cannot split its batches (other layers than Dense, a model whose update is
    large enough for the threaded kernels, batch gradient descent) runs as with
    ``n = 1``, its products on BLAS's threads (:func:`threads_to_blas`).
    numba's OpenMP layer starts its pool with nested parallel regions on in the runtime
    a later torch shares; this turns them back off (:func:`_unnest_openmp`).
    ``FASTNN_NUM_THREADS=n`` calls this at import. Returns the previous ``n``."""
    global _num_threads, _blas_pin, _lent
    n = int(n)
    if n < 1:
        raise ValueError(f"n={n}: expected a number of threads >= 1")
    _lent = None  # called inside threads_to_blas: this choice stands after it
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # starts numba's pool
    _unnest_openmp()
    if n == 1 and _blas_pin is not None:
        _blas_pin.restore_original_limits()
        _blas_pin = None
    if n > 1 and _blas_pin is None:
        try:
            import scipy.linalg  # noqa: F401  load scipy's OpenBLAS so that the limit covers it
            from threadpoolctl import threadpool_limits
        except ImportError:
            import warnings

            warnings.warn("set_num_threads: threadpoolctl is not installed, so BLAS keeps its "
                          "own threads and the two pools may fight; pip install "
                          "'fastnn[threads]' (or threadpoolctl)", RuntimeWarning, stacklevel=2)
        else:
            _blas_pin = threadpool_limits(limits=1, user_api="blas")
    previous, _num_threads = _num_threads, n
    return previous


#: The OpenMP runtimes numba's OpenMP layer may load, by the name a process finds them.
_OPENMP_NAMES = ("libgomp.so.1", "libomp.so", "libiomp5.so", "libomp.dylib", "libiomp5.dylib")


def _unnest_openmp():
    """Turn nested parallel regions back off in the OpenMP runtime numba's pool runs on.

    numba's OpenMP layer, starting its threads, sets the runtime's max active levels to
    255 (nesting on). fastnn never nests, but another library sharing that runtime does:
    torch imported after fastnn's threads started takes the loaded ``libgomp.so.1`` for
    its own and nests its intra-op regions, oversubscribing the cores (its epoch of the
    40-100-100-10 network, batch 100: 248 ms instead of 25 on two cores). Left alone if
    numba runs another layer or the user asked for nesting (``OMP_MAX_ACTIVE_LEVELS`` or
    ``OMP_NESTED`` set); only a runtime already loaded is touched. Returns the levels
    found, or None where there was nothing to do."""
    if "OMP_MAX_ACTIVE_LEVELS" in os.environ or "OMP_NESTED" in os.environ:
        return None
    try:
        if numba.threading_layer() != "omp":
            return None
    except ValueError:  # no pool started yet
        return None
    runtime = _openmp_runtime()
    if runtime is None:
        return None
    levels = runtime.omp_get_max_active_levels()
    if levels > 1:
        runtime.omp_set_max_active_levels(1)
    return levels


def _openmp_runtime():
    """The first of :data:`_OPENMP_NAMES` already loaded in the process (ctypes), or None;
    never loads one."""
    import ctypes

    for name in _OPENMP_NAMES:
        try:
            return ctypes.CDLL(name, mode=os.RTLD_NOLOAD)
        except (OSError, AttributeError):  # not loaded (or no RTLD_NOLOAD on this OS)
            continue
    return None


def blas_pinned():
    """True while :func:`set_num_threads` holds BLAS to one thread (it needs threadpoolctl)."""
    return _blas_pin is not None


_controller = None  # threadpoolctl's ThreadpoolController, once built; False without it


def blas_one_thread():
    """A context manager holding every BLAS loaded (numpy's, scipy's) to one thread and
    giving each its threads back on exit; does nothing without threadpoolctl. The
    controller is built once (about 0.3 ms), a use then costs about 10 us."""
    global _controller
    if _controller is None:
        try:
            import scipy.linalg  # noqa: F401  the OpenBLAS numba's np.dot calls
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    if not _controller:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


@contextlib.contextmanager
def threads_to_blas():
    """For the block, run as if :func:`set_num_threads` had not been called: fastnn's
    kernels serial, BLAS with the threads it had before the pin; then as before.

    ``fit`` runs an epoch so when it cannot split the batches over fastnn's threads:
    the products then outweigh the elementwise kernels, and on one BLAS thread they
    made the epoch 1.4 to 1.6 x as long (measured: 256-1024-1024-10, batch 256, Adam,
    with or without Dropout layers: 497-555 ms an epoch of 8192 samples with the pin,
    320-338 ms without). A :func:`set_num_threads` call inside the block stands."""
    global _num_threads, _blas_pin, _lent
    if _num_threads == 1:
        yield
        return
    token = _lent = (_num_threads, _blas_pin)
    if _blas_pin is not None:
        _blas_pin.restore_original_limits()
    _num_threads, _blas_pin = 1, None
    try:
        yield
    finally:
        if _lent is token:
            _lent = None
            _num_threads = token[0]
            if token[1] is not None:
                _blas_pin = blas_one_thread()


def threads():
    """Threads fastnn's parallel kernels may split over: those given by
    :func:`set_num_threads` (1 until then), at most numba's current count."""
    if _num_threads == 1:
        return 1
    return min(_num_threads, numba.get_num_threads())


_threads = os.environ.get("FASTNN_NUM_THREADS")
if _threads:
    set_num_threads(int(_threads))


def jit(fn):
    """Compile ``fn`` (a loop form) with the package's flags; compiles lazily on first call."""
    return numba.njit(**JIT)(fn)


def _twin(fn, suffix, bind):
    """A copy of ``fn`` named ``<qualname>_<suffix>`` whose global names in ``bind`` mean
    the objects given there.

    numba's disk cache names an entry by the function's qualified name, source and
    signature, not by its flags or the globals it calls: two compilations of one loop
    under one name would load each other's machine code. A twin has a name of its own."""
    namespace = {**fn.__globals__, **bind} if bind else fn.__globals__
    twin = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__,
                              fn.__closure__)
    twin.__qualname__ = f"{fn.__qualname__}_{suffix}"
    twin.__module__, twin.__doc__ = fn.__module__, fn.__doc__
    return twin


def jit_parallel(fn):
    """Like :func:`jit`, with ``parallel=True`` so ``numba.prange`` loops run on threads."""
    return numba.njit(**JIT_PARALLEL)(_twin(fn, "parallel", {}))


def jit_bound(fn, suffix, parallel=False, **bind):
    """Like :func:`jit` (:func:`jit_parallel` if ``parallel``), for a twin of ``fn`` that
    calls the functions in ``bind`` by those global names: one compilation, and one disk
    cache entry, per binding. (Passing a compiled function as an argument instead
    recompiles it in every new process: numba cannot find such a signature in its disk
    cache again.)"""
    if parallel:
        return numba.njit(**JIT_PARALLEL)(_twin(fn, suffix + "_parallel", bind))
    return numba.njit(**JIT)(_twin(fn, suffix, bind))


#: Elements from which a :func:`jit_sized` kernel (dropout, uniform, batch norm in
#: training) runs on numba's threads, once :func:`set_num_threads` has given them (BLAS
#: then on one thread).
#: Measured on the project's 2 cores (Intel, 2026-12-04), dropout forward, float32,
#: alone, serial / on 2 threads: 16k elements 0.27 / 0.46 ns an element (a parallel
#: region costs more than it gives), 64k 0.24 / 0.15, 256k 0.26 / 0.12, 1M 0.35 /
#: 0.19, 4M 0.33 / 0.17; batch norm forward plus backward, 256 x 1024: 0.23-0.25 ms /
#: 0.113-0.115. Inside ``fit`` the question does not arise: a model with a Dropout or
#: BatchNorm layer trains in the Python loop, which :func:`threads_to_blas` runs with
#: fastnn's kernels serial and BLAS on its threads. (With both pools on two threads,
#: dropout on numba's threads between products made each step 25 to 80 times slower;
#: ``perf_alternation`` in ``benchmarks/test_bench_perf_dropout_norm.py``.) Until
#: 2026-12-04 the default was 16M: on the AMD machine, with BLAS pinned, a parallel
#: dropout between products had cost 3 to 10 ms a step while other processes held a
#: core; in ``fit`` that was the Python loop, which now gives the threads to BLAS.
PARALLEL_MIN = int(os.environ.get("FASTNN_PARALLEL_MIN", "") or 262144)


def jit_sized(fn, size=None):
    """Compile ``fn`` twice, serial and parallel, and run the parallel one only when the
    work (``size(*args)``, by default the first argument's ``.size``) is at least
    :data:`PARALLEL_MIN` elements and fastnn was given threads (:func:`threads`, which
    :func:`set_num_threads` sets, pinning BLAS to one). ``prange`` is ``range`` in the
    serial compilation, so both give the same result.

    The returned function has the two dispatchers as ``.serial`` and ``.parallel``.
    """
    serial, parallel = jit(fn), jit_parallel(fn)

    def call(*args):
        n = args[0].size if size is None else size(*args)
        if n >= PARALLEL_MIN and threads() > 1:
            return call.parallel(*args)
        return call.serial(*args)

    call.__name__ = call.__qualname__ = fn.__name__.replace("_loop", "") + "_jit"
    call.__doc__ = fn.__doc__
    call.__module__ = fn.__module__
    call.serial, call.parallel = serial, parallel
    return call


def resolve_dtype(dtype):
    """Return ``dtype`` as a NumPy float dtype, or raise ``ValueError`` naming what is allowed."""
    if dtype is None:
        return DEFAULT_DTYPE
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"dtype={dtype!r}: expected 'float32' or 'float64'") from exc
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype={dtype!r}: expected 'float32' or 'float64'")
    return dt


BACKENDS = ("loop", "vec", "jit")


def resolve_backend(backend):
    """Check a backend name: ``'loop'`` (Python loops), ``'vec'`` (NumPy) or ``'jit'`` (numba)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
    return backend
