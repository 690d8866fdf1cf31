"""The equations, one module per family, each in three forms side by side.

``name_loop`` is plain Python loops over NumPy arrays (numba can compile it),
``name_vec`` is vectorized NumPy, ``name_jit`` is the loop compiled by numba (through
``fastnn._config``). Kernels are private: they write into preallocated ``out`` arrays
and trust their callers; the public API in ``fastnn`` validates and allocates.
"""

FORMS = ("loop", "vec", "jit")


def forms(namespace, name):
    """``{form: kernel}`` of the three forms of ``name`` defined in ``namespace``
    (a module's ``globals()``), for the name -> implementation tables."""
    return {form: namespace[f"{name}_{form}"] for form in FORMS}
