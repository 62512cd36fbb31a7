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
#: of a block: long enough to keep several independent vectors in flight and
#: to amortise the per-output-channel work, short enough that the channel-major
#: input block (Cin x BLOCK bytes) stays in L1/L2.  Measured: 192 to 256 beat
#: 128 by about 10% on MobileNetV2; a multiple of LANES.
BLOCK = 192

#: the last block of a tensor is processed rounded up to a multiple of this
#: (one 512-bit register of int16), not to the whole BLOCK
LANES = 32


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
    if rounding not in arith.ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {rounding!r}; expected one of {arith.ROUNDING_MODES}")
    return rounding == "double"


def output_size(size, kernel, stride, pad_before, pad_after):
    """Spatial output size of a valid convolution over the padded input."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def workers_for(jobs):
    """How many parallel workers to start for ``jobs`` independent jobs.

    (Asked here, not inside the kernels: ``numba.get_num_threads`` in jitted
    code would stop Numba from caching the compiled kernel.)
    """
    return max(1, min(numba.get_num_threads(), jobs))


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


@register_jitable
def load_block(x, p0, count, xt):
    """xt[c, q] = x[p0 + q, c] for q < count, 0 for the other computed lanes.

    x: int8 [pixels, Cin]; turns a block of pixels channel-major, so that one
    channel of the block is a contiguous row.  The zero tail lanes keep every
    sum small (no wrap-around anywhere); their results are never stored.
    """
    for q in range(count):
        for c in range(x.shape[1]):
            xt[c, q] = x[p0 + q, c]
    for q in range(count, lanes_for(count)):
        for c in range(x.shape[1]):
            xt[c, q] = 0


@register_jitable
def store_block(yt, p0, count, o0, o1, out):
    """out[p0 + q, o0 + o] = yt[o, q]: a channel-major output block back to pixel-major."""
    for q in range(count):
        for o in range(o1 - o0):
            out[p0 + q, o0 + o] = yt[o, q]


def channel_groups(pixels, channels, max_group=256, min_group=16):
    """Into how many groups to split the output channels of a 1x1 conv.

    Enough groups to keep every thread busy when there are few pixel blocks
    (deep layers at batch 1 have 7x7 = 49 pixels), and groups of at most
    ``max_group`` channels so the channel-major output block stays in L1/L2.
    """
    blocks = -(-pixels // BLOCK)
    wanted = max(-(-4 * numba.get_num_threads() // blocks), -(-channels // max_group))
    return max(1, min(wanted, channels // min_group))
