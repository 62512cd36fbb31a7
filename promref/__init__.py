"""promref: the reference implementation of PROM (ternary pointwise, int8
elsewhere) MobileNetV2 inference, integer-exact.

    >>> import promref
    >>> promref.infer("weights/mbv2_prom.npz", "cat.png")   # doctest: +SKIP
    [Prediction(index=3, label='cat', probability=0.91...), ...]
"""
import os

# Numba's OpenMP threads spin while they wait for work by default; when another
# process holds a core, every parallel region then waits for a time slice and a
# forward pass gets 10-40x slower (measured: docs/performance.md).  Sleeping
# waiters cost little when the machine is idle.  Only a default: a value the
# user set wins, and it must be set before the first parallel kernel runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# 512-bit vectors for the kernels on AVX-512 CPUs that LLVM tunes for 256 bits: before any
# module defines a kernel, since Numba fixes its target once a process (_vector_width).
from ._vector_width import allow_512_bit_vectors  # noqa: E402

WIDE_VECTORS = allow_512_bit_vectors()

from .api import Prediction, infer, predict, softmax  # noqa: E402
from .errors import ImageError, OverflowRiskError, PromrefError, ShapeError, WeightsFormatError  # noqa: E402
from .format import load, save  # noqa: E402
from .model import InputSpec, Layer, Model  # noqa: E402

__version__ = "0.1.0"

__all__ = ["infer", "predict", "softmax", "load", "save", "Prediction", "Model", "Layer", "InputSpec",
           "PromrefError", "WeightsFormatError", "OverflowRiskError", "ImageError", "ShapeError"]
