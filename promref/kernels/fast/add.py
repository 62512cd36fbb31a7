"""Residual add with its own requantization (docs/spec.md, "add"), TFLite's
quantized ADD structure::

    ra = scale((a - za) << L, Ma, sa);  rb = scale((b - zb) << L, Mb, sb)
    y  = clamp(zy + scale(ra + rb, My, sy), lo, hi)

Elementwise, so the tensors are processed as flat arrays in chunks of
``ELEMENTS_PER_JOB`` elements, one chunk per job.

The output depends only on the pair of int8 inputs, so for a validated
(read-only, hence cached) layer the kernel builds once the table of all
256 x 256 results -- with the reference kernel itself, in NumPy -- and then each
element is one look-up ``T[a + 128, b + 128]`` (64 KiB, stays in L2): exact
by construction, and about 1.5x faster here than the int64 arithmetic per
element (docs/performance.md).  Layers with writable arrays (never cached,
see ``_layer_cache.cached``) use the arithmetic loop: its body is int64
arithmetic from promref.arith; the rounding-mode test in it is
loop-invariant, so LLVM moves it out of the loop and the loop vectorises.
"""
import numba
import numpy as np
from numba import prange

from ..reference.add import add as reference_add
from ._layer_cache import cached
from ._options import JIT, workers_for
from ._requant import is_double, requantize, scale

#: elements per job: large enough to amortise scheduling, small enough to balance threads
ELEMENTS_PER_JOB = 1 << 14


@numba.njit(**JIT)
def _add(a, b, za, zb, left_shift, ma, sa, mb, sb, my, sy, zero_point, lo, hi, double, workers, out):
    """a, b: int8 [size] -> out: int8 [size]."""
    size = a.shape[0]
    jobs = (size + ELEMENTS_PER_JOB - 1) // ELEMENTS_PER_JOB
    for worker in prange(workers):
        for job in range(worker, jobs, workers):
            for i in range(job * ELEMENTS_PER_JOB, min(job * ELEMENTS_PER_JOB + ELEMENTS_PER_JOB, size)):
                ra = scale((np.int64(a[i]) - za) << left_shift, ma, sa, double)
                rb = scale((np.int64(b[i]) - zb) << left_shift, mb, sb, double)
                out[i] = requantize(ra + rb, my, sy, zero_point, lo, hi, double)


@numba.njit(**JIT)
def _add_table(a, b, table, workers, out):
    """a, b: int8 [size] -> out[i] = table[(a[i] + 128) * 256 + b[i] + 128]."""
    size = a.shape[0]
    jobs = (size + ELEMENTS_PER_JOB - 1) // ELEMENTS_PER_JOB
    for worker in prange(workers):
        for job in range(worker, jobs, workers):
            for i in range(job * ELEMENTS_PER_JOB, min(job * ELEMENTS_PER_JOB + ELEMENTS_PER_JOB, size)):
                out[i] = table[(np.int32(a[i]) + 128) * 256 + (np.int32(b[i]) + 128)]


def add_table(layer, zero_point_a, zero_point_b, rounding, always=False):
    """The int8 [256 * 256] table of all results, ``T[(a + 128) * 256 + b + 128]`` (cached).

    For a layer whose arrays may change: None, or with ``always`` a table built for this call only.
    """
    if not always and (layer.multiplier.flags.writeable or layer.shift.flags.writeable):
        return None

    def build():  # the reference kernel itself, on every pair of int8 values
        v = np.arange(-128, 128, dtype=np.int8)
        return reference_add(v[:, None], v[None, :], layer, zero_point_a, zero_point_b, rounding).reshape(-1)
    return cached(layer, ("fast.add",) + _table_key(layer, zero_point_a, zero_point_b, rounding), build,
                  layer.multiplier, layer.shift)


def _table_key(layer, zero_point_a, zero_point_b, rounding):
    """Everything a table depends on besides the cached arrays (multiplier, shift)."""
    return (int(zero_point_a), int(zero_point_b), rounding, int(layer.left_shift),
            int(layer.out_zero_point), int(layer.out_min), int(layer.out_max))


def residual_table(layer, zero_point_project, zero_point_residual, rounding, project_first):
    """The add's table indexed ``[(residual + 128) * 256 + project + 128]``, for the fused epilogue.

    ``project_first``: the project conv's output is the add's first input (``a``); the
    table is then transposed (and cached) so that the residual always comes first.
    """
    if not project_first:
        return add_table(layer, zero_point_residual, zero_point_project, rounding, always=True)
    table = add_table(layer, zero_point_project, zero_point_residual, rounding, always=True)
    key = ("fast.add.transposed",) + _table_key(layer, zero_point_project, zero_point_residual, rounding)
    return cached(layer, key, lambda: np.ascontiguousarray(table.reshape(256, 256).T).reshape(-1),
                  layer.multiplier, layer.shift)


def add(a, b, layer, zero_point_a, zero_point_b, rounding):
    """int8 a, b -> int8, elementwise (any layout: NHWC, or the channel-major [C, N, H, W])."""
    double = is_double(rounding)
    out = np.empty(a.shape, np.int8)
    size = a.size
    flat = (np.ascontiguousarray(a).reshape(size), np.ascontiguousarray(b).reshape(size))
    workers = workers_for(-(-size // ELEMENTS_PER_JOB), 4 * size)
    table = add_table(layer, zero_point_a, zero_point_b, rounding)
    if table is not None:
        _add_table(*flat, table, workers, out.reshape(size))
        return out
    m = [int(v) for v in layer.multiplier]
    s = [int(v) for v in layer.shift]
    _add(*flat, int(zero_point_a), int(zero_point_b), int(layer.left_shift), m[0], s[0], m[1], s[1], m[2], s[2],
         int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), double, workers, out.reshape(size))
    return out
