"""One flat parameter buffer and one flat gradient buffer; layers hold views.

Keeping every weight and bias of a model in one contiguous array lets an optimizer
update the whole model with one fused kernel call, and makes saving, loading and
copying the weights a single array operation.
"""

import numpy as np


class ParamBuffer:
    """Contiguous storage for a list of named parameter shapes.

    Parameters
    ----------
    shapes : list of tuple of int
        The shape of each parameter, in order.
    dtype : numpy dtype
        float32 or float64.

    Attributes
    ----------
    data, grad : ndarray, shape (size,)
        The flat parameter and gradient buffers.
    params, grads : list of ndarray
        C-contiguous views into ``data`` and ``grad``, one per shape.
    """

    def __init__(self, shapes, dtype):
        self.shapes = [tuple(int(d) for d in s) for s in shapes]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.size = int(self.offsets[-1])
        self.dtype = np.dtype(dtype)
        self.data = np.zeros(self.size, dtype=self.dtype)
        self.grad = np.zeros(self.size, dtype=self.dtype)
        self.params = self._views(self.data)
        self.grads = self._views(self.grad)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("params", "grads")}

    def __setstate__(self, state):
        # views do not survive pickling: cut them from the flat buffers again
        self.__dict__.update(state)
        for name in ("data", "grad"):  # e.g. joblib's read-only memory maps
            if not getattr(self, name).flags.writeable:
                setattr(self, name, getattr(self, name).copy())
        self.params = self._views(self.data)
        self.grads = self._views(self.grad)

    def _views(self, flat):
        return [
            flat[self.offsets[i] : self.offsets[i + 1]].reshape(shape)
            for i, shape in enumerate(self.shapes)
        ]


def flat_base(arrays):
    """The 1-D array that ``arrays`` tile exactly, in order, or None.

    Returns a view of length ``sum(a.size)`` when every array is a C-contiguous view
    of one buffer, each starting where the previous one ends, all of one dtype;
    otherwise None (then an optimizer falls back to one kernel call per array).
    """
    if not arrays:
        return None
    first = arrays[0]
    dtype = first.dtype
    expected = first.__array_interface__["data"][0]
    total = 0
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.flags.c_contiguous:
            return None
        if a.__array_interface__["data"][0] != expected:
            return None
        expected += a.nbytes
        total += a.size
    root = first
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.ndim != 1 or not root.flags.c_contiguous or root.dtype != dtype:
        return None
    start = (first.__array_interface__["data"][0] - root.__array_interface__["data"][0])
    start //= dtype.itemsize
    if start < 0 or start + total > root.size:
        return None
    return root[start : start + total]
