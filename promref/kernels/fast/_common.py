"""Helpers shared by the Numba kernels: compile options, the per-layer cache,
fused requantization, and the pixel-block transposes of the 1x1 kernels.

Everything arithmetic comes from :mod:`promref.arith` (``scale_single``,
``scale_double``, ``clamp`` are ``register_jitable``), so the fast kernels
round exactly like the reference: the only freedom a kernel has is the
*order* of exact integer additions, which cannot change a result.
"""
import hashlib
import os
import warnings

import numba
import numpy as np
from numba.core import caching
from numba.extending import register_jitable

from ... import arith

# ------------------------------------------------------- on-disk cache
#
# Numba's cache (``cache=True``) is invalidated only when the source file of the
# jitted function itself changes -- not when a function it calls from another
# file does.  The kernels compile in ``arith`` and this module, so an edit to
# the arithmetic would otherwise leave stale machine code on disk that no
# longer agrees with the reference.  The locators below are Numba's own, with a
# source stamp that also covers every file of this package and arith.py.

_HERE = os.path.dirname(os.path.abspath(__file__))
_SOURCES = sorted(os.path.join(_HERE, name) for name in os.listdir(_HERE) if name.endswith(".py"))
_SOURCES.append(os.path.abspath(arith.__file__))


def _sources_digest():
    digest = hashlib.sha256()
    for path in _SOURCES:
        try:
            with open(path, "rb") as f:
                digest.update(f.read())
        except OSError:                      # e.g. a frozen install without sources
            digest.update(path.encode())
    return digest.hexdigest()


class _StampAllSources:
    """Mixin for Numba's file-backed cache locators, applied to this package's kernels only."""
    _digest = None

    def get_source_stamp(self):
        if _StampAllSources._digest is None:
            _StampAllSources._digest = _sources_digest()
        return (super().get_source_stamp(), _StampAllSources._digest)

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None                      # not ours: Numba's usual locators handle it
        return super().from_function(py_func, py_file)


def _install_cache_locators():
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    bases = [getattr(caching, name, None) or getattr(caching, "_" + name, None)
             for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")]
    if impl is None or None in bases or not isinstance(getattr(impl, "_locator_classes", None), list):
        warnings.warn("promref: unknown Numba cache internals; the kernels' on-disk cache will not notice "
                      "edits to promref/arith.py (delete promref/kernels/fast/__pycache__ after such edits)")
        return
    if any(getattr(cls, "_promref", False) for cls in impl._locator_classes):
        return
    ours = [type("Promref" + base.__name__.lstrip("_"), (_StampAllSources, base),
                 {"_promref": True, "__module__": __name__}) for base in bases]
    impl._locator_classes[:0] = ours


_install_cache_locators()


#: options of every kernel.  No fastmath: it would license reassociations and
#: assumptions (no wrap, no NaN...) that we do not want near integer code;
#: integer sums are reordered freely anyway because they are exact.
JIT = dict(parallel=True, cache=True, fastmath=False, nogil=True)

#: pixels per block in the 1x1 kernels.  The inner loops run over the pixels
#: of a block: long loops keep LLVM in its unrolled vector body (a short loop
#: spends much of its time in the remainder code) and amortise the
#: per-output-channel work, while the channel-major input block (Cin x BLOCK
#: bytes, at most 480 KB) stays in L2.  Measured on the CIFAR MobileNetV2
#: (docs/performance.md): 512 beats 192 by ~1.25x, 256 by ~1.1x.  A multiple of 8 and of LANES.
BLOCK = 512

#: the last block of a tensor is processed rounded up to a multiple of this
#: (one 512-bit register of int16), not to the whole BLOCK
LANES = 32


def pixel_block(block, pixels):
    """The pixel block a 1x1 kernel uses for a tensor of ``pixels`` pixels.

    ``block`` must be a positive multiple of LANES (the kernels compute whole
    LANES-wide rows inside scratch rows of ``block``); small tensors (batch 1)
    get a block no longer than their pixels rounded up to LANES, so that the
    per-call scratch buffers stay small.
    """
    if not (isinstance(block, (int, np.integer)) and block > 0 and block % LANES == 0):
        raise ValueError(f"block must be a positive multiple of {LANES} pixels, got {block!r}")
    return int(min(block, max(LANES, -(-pixels // LANES) * LANES)))


def cached(layer, key, build, *sources):
    """``build()``, kept in ``layer.cache[key]`` and reused while it is still valid.

    ``key`` names the scalars the value depends on (an input zero point, the
    weight zero point); ``sources`` are the layer arrays it is derived from.
    A value is reused only while the layer holds the very same arrays and they
    are read-only -- as ``validate`` leaves them.  Layers with writable arrays
    (being built, trained, or deep-copied) are recomputed on every call, so an
    in-place edit can never meet a stale derived array.
    """
    frozen = all(isinstance(a, np.ndarray) and not a.flags.writeable for a in sources)
    entry = layer.cache.get(key)
    if frozen and entry is not None and all(a is b for a, b in zip(entry[0], sources)):
        return entry[1]
    value = build()
    if frozen:
        layer.cache[key] = (sources, value)
    return value


def requant_arrays(layer):
    """(multiplier, shift) as int64 [Cout]: the arith functions want int64 operands."""
    return cached(layer, ("fast.requant",), lambda: (layer.multiplier.astype(np.int64), layer.shift.astype(np.int64)),
                  layer.multiplier, layer.shift)


def is_double(rounding):
    """'double' -> True, 'single' -> False; anything else is an error (as in arith)."""
    return arith.rounding_rule(rounding, modes_only=True) is arith.scale_double


def output_size(size, kernel, stride, pad_before, pad_after):
    """Spatial output size of a valid convolution over the padded input."""
    return (size + pad_before + pad_after - kernel) // stride + 1


#: the least work (additions or multiply-accumulates) worth a second worker:
#: waking a sleeping thread costs tens of microseconds, as much as a small
#: call takes; without this floor batch 1 ran slower on 2 threads than on 1
MIN_WORK = 1 << 20


def workers_for(jobs, work):
    """How many parallel workers to start for ``jobs`` independent jobs of ``work`` operations in all.

    (Asked here, not inside the kernels: ``numba.get_num_threads`` in jitted
    code would stop Numba from caching the compiled kernel.)  The result only
    changes the speed, never a value: each output is computed by one job.
    """
    return max(1, min(numba.get_num_threads(), jobs, work // MIN_WORK))


@register_jitable
def scale(acc, multiplier, shift, double):
    """``arith.scale_double`` or ``arith.scale_single`` of int64 values.

    ``double`` is the same for a whole call, so in a loop LLVM moves the test
    out of the loop (loop unswitching) and each copy of the loop vectorises.
    """
    if double:
        return arith.scale_double(acc, multiplier, shift)
    return arith.scale_single(acc, multiplier, shift)


@register_jitable
def requantize(acc, multiplier, shift, zero_point, lo, hi, double):
    """One int64 accumulator -> its int8 output value (as int64), like arith.requantize."""
    return arith.clamp(zero_point + scale(acc, multiplier, shift, double), lo, hi)


@register_jitable
def requantize_channels(acc, bias, multiplier, shift, zero_point, lo, hi, double, out):
    """out[c] = requantize(acc[c] + bias[c]) with per-channel multiplier and shift."""
    for c in range(out.shape[0]):
        out[c] = requantize(np.int64(acc[c]) + bias[c], multiplier[c], shift[c], zero_point, lo, hi, double)


@register_jitable
def requantize_row(acc, bias, multiplier, shift, zero_point, lo, hi, double, out, lanes):
    """out[q] = requantize(acc[q] + bias) for q < lanes: one output channel of a pixel block."""
    for q in range(lanes):
        out[q] = requantize(np.int64(acc[q]) + bias, multiplier, shift, zero_point, lo, hi, double)


@register_jitable
def lanes_for(count):
    """How many pixel lanes the 1x1 kernels compute for a block of ``count`` pixels."""
    return (count + LANES - 1) // LANES * LANES


M32 = np.uint64(0x00000000FFFFFFFF)
M16 = np.uint64(0x0000FFFF0000FFFF)
M8 = np.uint64(0x00FF00FF00FF00FF)


@register_jitable
def _swap_bits(a, b, s, mask):
    """Swap the bits of ``a >> s`` and ``b`` selected by ``mask`` (one step of a transpose)."""
    t = ((a >> np.uint64(s)) ^ b) & mask
    return a ^ (t << np.uint64(s)), b ^ t


@register_jitable
def transpose8(a0, a1, a2, a3, a4, a5, a6, a7):
    """Transpose an 8 x 8 byte matrix held in eight uint64 words.

    Row i is word ai (byte k, the k-th least significant, is column k); the
    result's word j is column j.  Three rounds swap 4 x 4, 2 x 2, then 1 x 1
    blocks across the diagonal: 72 word operations instead of 64 single-byte
    loads and stores.
    """
    a0, a4 = _swap_bits(a0, a4, 32, M32)
    a1, a5 = _swap_bits(a1, a5, 32, M32)
    a2, a6 = _swap_bits(a2, a6, 32, M32)
    a3, a7 = _swap_bits(a3, a7, 32, M32)
    a0, a2 = _swap_bits(a0, a2, 16, M16)
    a1, a3 = _swap_bits(a1, a3, 16, M16)
    a4, a6 = _swap_bits(a4, a6, 16, M16)
    a5, a7 = _swap_bits(a5, a7, 16, M16)
    a0, a1 = _swap_bits(a0, a1, 8, M8)
    a2, a3 = _swap_bits(a2, a3, 8, M8)
    a4, a5 = _swap_bits(a4, a5, 8, M8)
    a6, a7 = _swap_bits(a6, a7, 8, M8)
    return a0, a1, a2, a3, a4, a5, a6, a7


@register_jitable
def transpose_tiles(src, s0, ss, n, dst, d0, ds):
    """Transpose the n 8 x 8 byte tiles k < n whose row i is the word src[s0 + i * ss + k]:
    column j of tile k goes to dst[d0 + j * ds + k] (uint64 arrays).

    The tiles are neighbours in ``src`` and ``dst``, so this loop runs over
    contiguous words and LLVM vectorises it (eight tiles per 512-bit register).
    """
    # one view per row: indexed by the loop counter alone, the loop vectorises
    # (an index like ``s0 + k`` brings Numba's negative-index test, which stops LLVM)
    a0, a1, a2, a3 = src[s0:s0 + n], src[s0 + ss:s0 + ss + n], src[s0 + 2 * ss:s0 + 2 * ss + n], \
        src[s0 + 3 * ss:s0 + 3 * ss + n]
    a4, a5, a6, a7 = src[s0 + 4 * ss:s0 + 4 * ss + n], src[s0 + 5 * ss:s0 + 5 * ss + n], \
        src[s0 + 6 * ss:s0 + 6 * ss + n], src[s0 + 7 * ss:s0 + 7 * ss + n]
    t0, t1, t2, t3 = dst[d0:d0 + n], dst[d0 + ds:d0 + ds + n], dst[d0 + 2 * ds:d0 + 2 * ds + n], \
        dst[d0 + 3 * ds:d0 + 3 * ds + n]
    t4, t5, t6, t7 = dst[d0 + 4 * ds:d0 + 4 * ds + n], dst[d0 + 5 * ds:d0 + 5 * ds + n], \
        dst[d0 + 6 * ds:d0 + 6 * ds + n], dst[d0 + 7 * ds:d0 + 7 * ds + n]
    for k in range(n):
        t0[k], t1[k], t2[k], t3[k], t4[k], t5[k], t6[k], t7[k] = transpose8(
            a0[k], a1[k], a2[k], a3[k], a4[k], a5[k], a6[k], a7[k])


@register_jitable
def words(a):
    """A C-contiguous int8 array as a flat uint64 array (its size must be a multiple of 8)."""
    return a.reshape(a.size).view(np.uint64)


@register_jitable
def load_block(x, p0, count, xt, scratch):
    """xt[c, q] = x[p0 + q, c] for q < count, 0 for the other computed lanes.

    x: int8 [pixels, Cin]; turns a block of pixels channel-major, so that one
    channel of the block is a contiguous row.  The zero tail lanes keep every
    sum small (no wrap-around anywhere); their results are never stored.
    When Cin is a multiple of 8 (every MobileNetV2 layer) whole 8 x 8 byte
    tiles are moved: the block's words are first reordered (64-bit moves) so
    that for each group of 8 channels the tiles of consecutive pixels lie side
    by side, ``scratch[(g * 8 + i) * tiles + b]`` = pixel ``8b + i``, channels
    ``8g..8g+7``; then ``transpose_tiles`` writes each group's 8 rows of ``xt``
    in one vectorised loop.  The rest goes byte by byte.  ``scratch``: uint64,
    at least Cin * block / 8 words.
    """
    cin = x.shape[1]
    done = 0
    if cin % 8 == 0:
        done = count - count % 8
        x64, xt64 = words(x), words(xt)
        cin8, block8 = cin // 8, xt.shape[1] // 8
        tiles = done // 8
        for b in range(tiles):
            for i in range(8):
                row = x64[(p0 + 8 * b + i) * cin8:(p0 + 8 * b + i + 1) * cin8]
                for g in range(cin8):
                    scratch[(g * 8 + i) * tiles + b] = row[g]
        for g in range(cin8):
            transpose_tiles(scratch, g * 8 * tiles, tiles, tiles, xt64, 8 * g * block8, block8)
    for q in range(done, count):
        for c in range(cin):
            xt[c, q] = x[p0 + q, c]
    for q in range(count, lanes_for(count)):
        for c in range(cin):
            xt[c, q] = 0


@register_jitable
def store_block(yt, p0, count, o0, o1, out):
    """out[p0 + q, o0 + o] = yt[o, q]: a channel-major output block back to pixel-major.

    8 x 8 byte tiles when o0, o1 and Cout are multiples of 8: one row of
    tiles (8 channels, every pixel of the block) at a time, transposed by
    ``transpose_tiles`` into ``tmp`` and scattered to the output as words.
    """
    cout = out.shape[1]
    done = 0
    if cout % 8 == 0 and o0 % 8 == 0 and o1 % 8 == 0:
        done = count - count % 8
        yt64, out64 = words(yt), words(out)
        cout8, block8 = cout // 8, yt.shape[1] // 8
        tiles = done // 8
        tmp = np.empty(8 * tiles, np.uint64)
        for g in range((o1 - o0) // 8):      # rows 8g.. (all pixels) -> pixels p0 + 8b + j, channels o0 + 8g..
            transpose_tiles(yt64, 8 * g * block8, block8, tiles, tmp, 0, tiles)
            first = p0 * cout8 + o0 // 8 + g
            for j in range(8):
                for b in range(tiles):
                    out64[first + (8 * b + j) * cout8] = tmp[j * tiles + b]
    for q in range(done, count):
        for o in range(o1 - o0):
            out[p0 + q, o0 + o] = yt[o, q]


def channel_group(pixels, channels, block=BLOCK, max_group=256, min_group=16):
    """How many output channels one job of a 1x1 kernel computes.

    Small enough that there are jobs for every thread when there are few pixel
    blocks (deep layers at batch 1 have 7x7 = 49 pixels) and that the
    channel-major output block (group x block bytes) stays in L2, at most
    ``max_group``; a multiple of 8 when ``channels`` is, so that
    ``store_block`` can move 8 x 8 tiles.
    """
    blocks = -(-pixels // block)
    groups = max(-(-4 * numba.get_num_threads() // blocks), -(-channels // max_group))
    group = -(-channels // max(1, min(groups, channels // min_group)))
    if channels % 8 == 0:
        group = -(-group // 8) * 8
    return min(group, channels)
