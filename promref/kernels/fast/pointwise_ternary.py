"""Ternary 1x1 convolution, additions only (docs/spec.md, "pointwise_ternary"), channel-major.

The reference computes, for every pixel p and output channel o,

    acc[o, p] = bias'[o] + sum_{c: t[o,c] = +1} x[c, p] - sum_{c: t[o,c] = -1} x[c, p]

with the folded bias ``bias'[o] = bias[o] - zx * sum_c t[o, c]``.  This kernel:

* turns the weights, once per layer, into index lists: for each output
  channel the input channels it adds, then the ones it subtracts (CSR);
* works on channel-major tensors (``_layout``): ``x[c]`` is input channel c
  over every pixel of the batch, so a block of pixels (``rows_block``) of one
  channel is a contiguous run of a row -- nothing is transposed; a short
  block of a larger tensor is first copied into one contiguous array, as its
  rows' power-of-two stride would crowd them into a few L2 sets
  (``_row_sums.copy_block``);
* for each output channel adds and subtracts whole runs.  The innermost
  loop is ``part[q] += (x[r0, p0 + q] + x[r1, p0 + q]) + (x[r2, p0 + q] + x[r3, p0 + q])``
  over contiguous pixels (unsigned indices, no row views: ``_row_sums.add_rows``): no
  multiplication, and it vectorises (32 int16 lanes per 512-bit register);
  taking four rows per pass reads and writes ``part`` a quarter as often;
* requantizes each output channel of the block (folded bias, scale, zero
  point, clamp) straight into its output row, and, when the engine fuses the
  residual add that follows (``residual`` and ``table``), looks the add's
  result up while the row is still in L1 (``_requant.store_channel``).

With at most FEW_PIXELS pixels (batch 1, deep layers) the runs are so short
that each pass's fixed cost (LLVM's run-time alias checks, the row loads, the
loop set-up) outweighs its additions, and the call goes to ``_ternary_masked``,
which vectorises over output channels instead.

Why the narrow integers are exact:

* ``part`` (int16) sums at most ``INT16_EXACT_TERMS = 255`` int8 rows:
  ``|part| <= 255 * 128 = 32640 < 2**15``; an output channel with at most
  255 non-zero weights (every one with Cin <= 255) is requantized straight
  from ``part``;
* ``acc`` (int32) is the signed sum of all the chunks, at most
  ``128 * sum|t[o]|`` in size -- below the accumulator bound, which the loader
  proves to be < 2**31 (validate.accumulator_bound; ``max|x - zx| >= 128``);
* ``acc + bias'`` is the layer's accumulator, so it fits int32 even where ``bias'`` does
  not: the requantization forms it with 32-bit wrap-around (``_requant.requantize_accumulator``).
"""
import numba
import numpy as np
from numba import prange

from ._layer_cache import cached
from ._layout import to_channel_major, to_nhwc
from ._options import JIT, channel_group, pixel_block, rows_block, workers_for
from ._requant import is_double, requant_arrays
from ._row_sums import block_outputs, copies_blocks, copy_block
from ._ternary_masked import pointwise_ternary_masked, signs

#: up to this many pixels per call the masked kernel is faster.  Round 3, fifth step, once
#: the masked kernel shared each mask load between a tile of 8 pixels: at 16 px (4 x 4) it
#: takes 0.35-0.45x the rows kernel's time, at 49 px (7 x 7) 0.75-0.9x; at 64 px (8 x 8)
#: the rows kernel wins (0.5-1.0x of masked) -- docs/performance.md
FEW_PIXELS = 49

#: the residual and table arguments of an unfused call
NO_RESIDUAL = np.zeros((0, 0), np.int8)
NO_TABLE = np.zeros(0, np.int8)


def prepare(layer, in_zero_point):
    """The derived arrays of a ternary layer, cached per input zero point.

    ``rows[ptr[o]:mid[o]]`` are the input channels output ``o`` adds (t = +1),
    ``rows[mid[o]:ptr[o+1]]`` the ones it subtracts (t = -1); ``bias`` is the
    folded bias ``bias[o] - zx * sum_c t[o, c]`` (int64).
    """
    def build():
        t = layer.weights
        plus, minus = (t == 1).sum(axis=1), (t == -1).sum(axis=1)
        ptr = np.zeros(len(t) + 1, np.int64)
        np.cumsum(plus + minus, out=ptr[1:])
        mid = ptr[:-1] + plus
        # a stable sort of each row by the key +1 -> 0, -1 -> 1, 0 -> 2 lists the +1
        # columns, then the -1 columns; the zeros come last and are cut off
        order = np.argsort(np.where(t == 1, 0, np.where(t == -1, 1, 2)), axis=1, kind="stable")
        rows = np.concatenate([order[o, :ptr[o + 1] - ptr[o]] for o in range(len(t))] +
                              [np.zeros(0, order.dtype)]).astype(np.int32)
        bias = layer.bias.astype(np.int64) - in_zero_point * t.astype(np.int64).sum(axis=1)
        return ptr, mid, rows, bias
    return cached(layer, ("fast.pointwise_ternary", in_zero_point), build, layer.weights, layer.bias)


@numba.njit(**JIT)
def _pointwise_ternary(x, ptr, mid, rows, bias, multiplier, shift, zero_point, lo, hi, double,
                       block, group, copying, workers, residual, table, out):
    """x: int8 [Cin, pixels] -> out: int8 [Cout, pixels] (channel-major).

    A job is one (block of ``block`` pixels, group of ``group`` output
    channels) pair.  Each worker allocates its scratch once and takes every
    ``workers``-th job.  Every output value is computed by exactly one job,
    always the same way, so the result does not depend on the number of threads.
    With a non-empty ``table`` the output is the residual add of ``residual``
    [Cout, pixels] and this layer's result (see ``_requant.add_residual_into``).
    With ``copying`` each job first copies its block's rows (``_row_sums.copy_block``).
    """
    pixels = x.shape[1]
    cout = out.shape[0]
    groups = (cout + group - 1) // group
    jobs = (pixels + block - 1) // block * groups
    for worker in prange(workers):
        part = np.empty(block, np.int16)          # the sum of one chunk of rows
        acc = np.empty(block, np.int32)           # one output channel of the block
        y = np.empty(block, np.int8)              # its requantized values, when fused
        rows_of_block = np.empty((x.shape[0] if copying else 0, block), np.int8)
        for job in range(worker, jobs, workers):
            p0 = job // groups * block
            o0 = job % groups * group
            count = min(block, pixels - p0)
            o1 = min(o0 + group, cout)
            # two calls, not one on a variable array: each is compiled for its own array
            if copying:
                copy_block(x, p0, count, rows_of_block)
                block_outputs(rows_of_block, 0, ptr, mid, rows, bias, multiplier, shift, zero_point, lo, hi, double,
                              residual, table, o0, o1, p0, count, part, acc, y, out)
            else:
                block_outputs(x, p0, ptr, mid, rows, bias, multiplier, shift, zero_point, lo, hi, double,
                              residual, table, o0, o1, p0, count, part, acc, y, out)


def pointwise_ternary_cm(x, layer, in_zero_point, rounding, block=None, method=None, residual=None, table=None):
    """int8 [Cin, N, H, W] -> int8 [Cout, N, H, W] (channel-major).

    ``method``: "rows" (the row sums above), "masked" (``_ternary_masked``,
    for few pixels) or None: "masked" up to FEW_PIXELS pixels, else "rows".
    ``block`` (pixels per job of "rows", a multiple of LANES; None: ``rows_block(Cin)``).  Neither
    changes a result, only the speed; the tests force both methods and use
    small blocks to reach many blocks and tails.  ``residual`` (int8 [Cout, N, H, W])
    and ``table`` (``add.residual_table``): return the residual add of
    ``residual`` and this layer's output instead of the output itself.
    """
    ptr, mid, rows, bias = prepare(layer, in_zero_point)
    multiplier, shift = requant_arrays(layer)
    cin, n, h, w = x.shape
    pixels, cout = n * h * w, layer.out_channels
    flat = np.ascontiguousarray(x).reshape(cin, pixels)
    fused = (NO_RESIDUAL, NO_TABLE) if table is None else (residual.reshape(cout, pixels), table)
    output = (int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(rounding))
    out = np.empty((cout, pixels), np.int8)
    if method is None:
        method = "masked" if pixels <= FEW_PIXELS else "rows"
    if method == "masked":
        pointwise_ternary_masked(flat, signs(layer), bias, multiplier, shift, *output,
                                 workers_for(pixels, pixels * cin * cout), *fused, out)
    elif method == "rows":
        block = pixel_block(rows_block(cin) if block is None else block, pixels)
        group = channel_group(pixels, cout, block)
        _pointwise_ternary(flat, ptr, mid, rows, bias, multiplier, shift, *output, block, group,
                           copies_blocks(pixels, block), workers_for(-(-pixels // block) * -(-cout // group), pixels * len(rows)), *fused, out)
    else:
        raise ValueError(f"unknown method {method!r}; expected 'rows', 'masked' or None")
    return out.reshape(cout, n, h, w)


def pointwise_ternary(x, layer, in_zero_point, rounding, block=None, method=None):
    """int8 [N, H, W, Cin] -> int8 [N, H, W, Cout]: ``pointwise_ternary_cm`` between NHWC conversions."""
    return to_nhwc(pointwise_ternary_cm(to_channel_major(x), layer, in_zero_point, rounding, block, method))
