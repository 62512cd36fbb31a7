"""Ternary 1x1 convolution, additions only (docs/spec.md, "pointwise_ternary").

The reference computes, for every pixel p and output channel o,

    acc[p, o] = bias'[o] + sum_{c: t[o,c] = +1} x[p, c] - sum_{c: t[o,c] = -1} x[p, c]

with the folded bias ``bias'[o] = bias[o] - zx * sum_c t[o, c]``.  This kernel:

* turns the weights, once per layer, into index lists: for each output
  channel the input channels it adds, then the ones it subtracts (CSR);
* treats the batch as one long list of pixels (a 1x1 conv does not care
  which image a pixel is in) and cuts it into blocks of ``BLOCK`` pixels;
* transposes a block to channel-major ``xt[Cin, BLOCK]``, so that one input
  channel of the block is one contiguous row;
* for each output channel adds and subtracts whole rows.  The innermost
  loop is ``part[q] += (r0[q] + r1[q]) + (r2[q] + r3[q])`` over contiguous
  pixels: no multiplication, and it vectorises (32 int16 lanes per 512-bit
  register); taking four rows per pass reads and writes ``part`` a quarter
  as often;
* requantizes each output channel of the block (folded bias, scale, zero
  point, clamp) and transposes the block back to NHWC.

The transposes move 8 x 8 byte tiles through 64-bit words, a row of tiles
per vectorised loop (``_common.transpose_tiles``); done byte by byte they
were a third of the kernel's time (docs/performance.md).

With at most FEW_PIXELS pixels (batch 1, deep layers) the rows above are
too short to vectorise, and the call goes to ``_ternary_masked``, which
vectorises over output channels instead.

Why the narrow integers are exact:

* ``part`` (int16) sums at most ``INT16_EXACT_TERMS = 255`` int8 rows:
  ``|part| <= 255 * 128 = 32640 < 2**15``; an output channel with at most
  255 non-zero weights (every one with Cin <= 255) is requantized straight
  from ``part``;
* ``acc`` (int32) is the signed sum of all the chunks, at most
  ``128 * sum|t[o]|`` in size -- below the accumulator bound, which the loader
  proves to be < 2**31 (validate.accumulator_bound; ``max|x - zx| >= 128``);
* ``acc + bias'`` is formed in int64 inside the requantization.
"""
import numba
import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._common import (BLOCK, JIT, cached, channel_group, is_double, lanes_for, load_block, pixel_block,
                      requant_arrays, requantize_row, store_block, workers_for)
from ._ternary_masked import INT16_EXACT_TERMS, masks, pointwise_ternary_masked

#: up to this many pixels per call the masked kernel is faster: 1.6-2.1x at 16 pixels
#: (batch 1, 4 x 4), 0.4-0.9x at 64 (docs/performance.md)
FEW_PIXELS = 32


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


@register_jitable
def add_rows(xt, rows, start, stop, part, lanes):
    """part[q] += xt[rows[j], q] for j in [start, stop)."""
    j = start
    while j + 4 <= stop:
        r0, r1, r2, r3 = xt[rows[j]], xt[rows[j + 1]], xt[rows[j + 2]], xt[rows[j + 3]]
        for q in range(lanes):
            part[q] += (r0[q] + r1[q]) + (r2[q] + r3[q])
        j += 4
    for j in range(j, stop):
        r0 = xt[rows[j]]
        for q in range(lanes):
            part[q] += r0[q]


@register_jitable
def subtract_rows(xt, rows, start, stop, part, lanes):
    """part[q] -= xt[rows[j], q] for j in [start, stop)."""
    j = start
    while j + 4 <= stop:
        r0, r1, r2, r3 = xt[rows[j]], xt[rows[j + 1]], xt[rows[j + 2]], xt[rows[j + 3]]
        for q in range(lanes):
            part[q] -= (r0[q] + r1[q]) + (r2[q] + r3[q])
        j += 4
    for j in range(j, stop):
        r0 = xt[rows[j]]
        for q in range(lanes):
            part[q] -= r0[q]


@register_jitable
def chunk_sum(xt, rows, first, mid, last, part, lanes):
    """part[q] = sum_{j in [first, mid)} xt[rows[j], q] - sum_{j in [mid, last)} xt[rows[j], q], in int16.

    At most INT16_EXACT_TERMS rows (``last - first <= INT16_EXACT_TERMS``), so the int16 sum is exact.
    """
    for q in range(lanes):
        part[q] = 0
    add_rows(xt, rows, first, mid, part, lanes)
    subtract_rows(xt, rows, mid, last, part, lanes)


@register_jitable
def signed_row_sum(xt, rows, start, mid, stop, part, acc, lanes):
    """acc[q] = sum_{j in [start, mid)} xt[rows[j], q] - sum_{j in [mid, stop)} xt[rows[j], q].

    The rows are taken INT16_EXACT_TERMS at a time into the int16 ``part`` (twice the
    lanes of int32 per instruction), which is then added to the int32 ``acc``.
    """
    for q in range(lanes):
        acc[q] = 0
    for first in range(start, stop, INT16_EXACT_TERMS):
        last = min(first + INT16_EXACT_TERMS, stop)
        chunk_sum(xt, rows, first, min(max(first, mid), last), last, part, lanes)
        for q in range(lanes):
            acc[q] += part[q]


@numba.njit(**JIT)
def _pointwise_ternary(x, ptr, mid, rows, bias, multiplier, shift, zero_point, lo, hi, double,
                       block, group, workers, out):
    """x: int8 [pixels, Cin] -> out: int8 [pixels, Cout].

    A job is one (block of ``block`` pixels, group of ``group`` output
    channels) pair.  Each worker allocates its scratch once and takes every
    ``workers``-th job.  Every output value is computed by exactly one job,
    always the same way, so the result does not depend on the number of threads.
    """
    pixels, cin = x.shape
    cout = out.shape[1]
    groups = (cout + group - 1) // group
    jobs = (pixels + block - 1) // block * groups
    for worker in prange(workers):
        xt = np.empty((cin, block), np.int8)      # the input block, channel-major
        scratch = np.empty(cin * block // 8, np.uint64)  # load_block's reordered words
        part = np.empty(block, np.int16)          # the sum of one chunk of rows
        acc = np.empty(block, np.int32)           # one output channel of the block
        yt = np.empty((group, block), np.int8)    # the output block, channel-major
        for job in range(worker, jobs, workers):
            p0 = job // groups * block
            o0 = job % groups * group
            o1 = min(o0 + group, cout)
            count = min(block, pixels - p0)
            lanes = lanes_for(count)
            load_block(x, p0, count, xt, scratch)
            for o in range(o0, o1):
                if ptr[o + 1] - ptr[o] <= INT16_EXACT_TERMS:    # one chunk: the int16 sum is the whole sum
                    chunk_sum(xt, rows, ptr[o], mid[o], ptr[o + 1], part, lanes)
                    requantize_row(part, bias[o], multiplier[o], shift[o], zero_point, lo, hi, double,
                                   yt[o - o0], lanes)
                else:
                    signed_row_sum(xt, rows, ptr[o], mid[o], ptr[o + 1], part, acc, lanes)
                    requantize_row(acc, bias[o], multiplier[o], shift[o], zero_point, lo, hi, double,
                                   yt[o - o0], lanes)
            store_block(yt, p0, count, o0, o1, out)


def pointwise_ternary(x, layer, in_zero_point, rounding, block=BLOCK, method=None):
    """int8 [N, H, W, Cin] -> int8 [N, H, W, Cout].

    ``method``: "rows" (the row sums above), "masked" (``_ternary_masked``,
    for few pixels) or None: "masked" up to FEW_PIXELS pixels, else "rows".
    ``block`` (pixels per job of "rows", a multiple of LANES).  Neither
    changes a result, only the speed; the tests force both methods and use
    small blocks to reach many blocks and tails.
    """
    ptr, mid, rows, bias = prepare(layer, in_zero_point)
    multiplier, shift = requant_arrays(layer)
    n, h, w, cin = x.shape
    pixels, cout = n * h * w, layer.out_channels
    if method is None:
        method = "masked" if pixels <= FEW_PIXELS else "rows"
    if method == "masked":
        plus, minus = masks(layer)
        out = np.empty((pixels, cout), np.int8)
        pointwise_ternary_masked(np.ascontiguousarray(x).reshape(pixels, cin), plus, minus, bias, multiplier, shift,
                                 int(layer.out_zero_point), int(layer.out_min), int(layer.out_max),
                                 is_double(rounding), workers_for(pixels, pixels * cin * cout), out)
        return out.reshape(n, h, w, cout)
    if method != "rows":
        raise ValueError(f"unknown method {method!r}; expected 'rows', 'masked' or None")
    block = pixel_block(block, pixels)
    group = channel_group(pixels, cout, block)
    out = np.empty((pixels, cout), np.int8)
    _pointwise_ternary(np.ascontiguousarray(x).reshape(pixels, cin), ptr, mid, rows, bias, multiplier, shift,
                       int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(rounding),
                       block, group, workers_for(-(-pixels // block) * -(-cout // group), pixels * len(rows)), out)
    return out.reshape(n, h, w, cout)
