"""The ternary row-sum kernel's inner work: the signed sums of rows over one block of pixels.

``pointwise_ternary._pointwise_ternary`` hands each job a block of pixels and a group of
output channels; ``block_outputs`` sums, for each output channel, the input rows its
weights select (``add_rows``, ``signed_row_sum``) and requantizes the block into the
output (``_requant.store_channel``).

**Copying a block's rows.** In the channel-major layout, input row c of a block starts at
``c * pixels + p0``.  The CIFAR and ImageNet pixel counts are multiples of large powers of
two (a CIFAR batch of 64 has 65,536, 16,384, 4,096 or 1,024 pixels), so the rows of a
block sit at a power-of-two stride and fall into a fraction of the L2's sets (rows of 896
bytes at a stride of 4 KB use 14 of every 64 sets): they evict each other before the next
output channel reads them again.  So when a tensor has more than one block and the blocks
are short (a wide input: ``rows_block`` gives 896 pixels for 576 rows), each job first
copies its block's rows into one contiguous ``[Cin, block]`` array (``copy_block``, one
pass over Cin x block bytes) and every output channel of the job reads the copy.  Measured
in one process, the two forms alternating (docs/performance.md): 1.24-1.57x on the layers
with 576 rows, 1.18-1.19x over all the layers with short blocks (CIFAR batch 64, ImageNet
batch 8).  Long blocks (rows of 2 KB or more, which the prefetchers stream) gained
1.05-1.14x in sum but lost 6-15 % on the layers with few output channels, so they are read
in place.  The int8 1x1 kernel (``conv2d``) copies its blocks by the same rule; its blocks
of 512 pixels are always short.
"""
import numpy as np
from numba.extending import register_jitable

from ._requant import store_channel
from ._ternary_masked import INT16_EXACT_TERMS

#: blocks shorter than this are copied (``copy_block``) when the tensor has more than one block
COPY_BELOW = 2048


def copies_blocks(pixels, block):
    """True when the jobs of a call copy their block's rows first: several blocks, each short
    (the one block of a small tensor is contiguous already)."""
    return pixels > block and block < COPY_BELOW


@register_jitable
def copy_block(x, p0, count, rows_of_block):
    """rows_of_block[c, q] = x[c, p0 + q] for every input row c and q < count."""
    base, n = np.uint64(p0), np.uint64(count)
    for c in range(np.uint64(x.shape[0])):
        for q in range(n):
            rows_of_block[c, q] = x[c, base + q]


@register_jitable
def block_outputs(x, p0, ptr, mid, rows, bias, multiplier, shift, zero_point, lo, hi, double, residual, table,
                  o0, o1, out0, count, part, acc, y, out):
    """Output channels o0 <= o < o1 of the pixels ``out0 .. out0 + count`` of ``out``, read from the pixels
    ``p0 .. p0 + count`` of ``x`` (the input itself, or the block's copy with ``p0`` = 0)."""
    for o in range(o0, o1):
        if ptr[o + 1] - ptr[o] <= INT16_EXACT_TERMS:    # one chunk: the int16 sum is the whole sum
            for q in range(count):
                part[q] = 0
            add_rows(x, rows, ptr[o], mid[o], p0, count, part, 1)
            add_rows(x, rows, mid[o], ptr[o + 1], p0, count, part, -1)
            store_channel(part, bias[o], multiplier[o], shift[o], zero_point, lo, hi, double,
                          residual, table, y, out, o, out0, count)
        else:
            signed_row_sum(x, rows, ptr[o], mid[o], ptr[o + 1], p0, count, part, acc)
            store_channel(acc, bias[o], multiplier[o], shift[o], zero_point, lo, hi, double,
                          residual, table, y, out, o, out0, count)


@register_jitable
def add_rows(x, rows, start, stop, p0, count, part, sign):
    """part[q] += sign * x[rows[j], p0 + q] for j in [start, stop), q < count (sign +1 or -1).

    ``x`` is indexed in place with *unsigned* pixel indices: a row view (``x[r][p0:]``)
    costs Numba a reference count and slice arithmetic, ~80 ns a pass of four rows, more
    than the additions of 512 pixels; a signed computed index gets a wrap-around test that
    stops the vectoriser.  An unsigned one has neither (docs/performance.md).  The row numbers
    and ``j`` are unsigned too: signed, each of the four rows of a pass paid a negative-index
    fix-up (four instructions) before its loop, 10-20 % of a 64-pixel layer.
    """
    base, n = np.uint64(p0), np.uint64(count)
    j, end, four = np.uint64(start), np.uint64(stop), np.uint64(4)
    while j + four <= end:
        r0, r1 = np.uint64(rows[j]), np.uint64(rows[j + np.uint64(1)])
        r2, r3 = np.uint64(rows[j + np.uint64(2)]), np.uint64(rows[j + np.uint64(3)])
        if sign > 0:
            for q in range(n):
                part[q] += (x[r0, base + q] + x[r1, base + q]) + (x[r2, base + q] + x[r3, base + q])
        else:
            for q in range(n):
                part[q] -= (x[r0, base + q] + x[r1, base + q]) + (x[r2, base + q] + x[r3, base + q])
        j += four
    while j < end:
        r0 = np.uint64(rows[j])
        if sign > 0:
            for q in range(n):
                part[q] += x[r0, base + q]
        else:
            for q in range(n):
                part[q] -= x[r0, base + q]
        j += np.uint64(1)


@register_jitable
def signed_row_sum(x, rows, start, mid, stop, p0, count, part, acc):
    """acc[q] = sum_{j in [start, mid)} x[rows[j], p0 + q] - sum_{j in [mid, stop)} x[rows[j], p0 + q].

    The rows are taken INT16_EXACT_TERMS at a time into the int16 ``part`` (twice the
    lanes of int32 per instruction), which is then added to the int32 ``acc``.
    """
    for q in range(count):
        acc[q] = 0
    for first in range(start, stop, INT16_EXACT_TERMS):
        last = min(first + INT16_EXACT_TERMS, stop)
        split = min(max(first, mid), last)
        for q in range(count):
            part[q] = 0
        add_rows(x, rows, first, split, p0, count, part, 1)
        add_rows(x, rows, split, last, p0, count, part, -1)
        for q in range(count):
            acc[q] += part[q]
