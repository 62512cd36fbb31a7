"""Kernel backends: ``reference`` (NumPy, the specification in code) and
``fast`` (Numba).  Both expose one function per op with the same signature::

    op(x, layer, in_zero_point, rounding) -> int8 output

(``add`` takes two inputs and two zero points).  x is int8 NHWC
[N, H, W, C] (or [N, C] for fully_connected).
"""
