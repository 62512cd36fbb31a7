"""Let Numba's kernels use 512-bit vectors on CPUs with AVX-512BW.

LLVM tunes Intel's AVX-512 CPUs (Skylake-X to Emerald Rapids) to *prefer*
256-bit vectors (its ``prefer-256-bit`` tuning flag, kept from the days when
512-bit instructions lowered the clock of the whole core).  promref's kernels
are integer loops over long contiguous rows -- int16 additions in the ternary
1x1 kernel, int16/int32 multiply-accumulates in depthwise -- so twice the lanes
per instruction is nearly twice the work per cycle: on an Emerald Rapids
machine the ternary 1x1 layers of the CIFAR network at batch 64 ran 1.43x
faster with 512-bit vectors, the whole network 1.2-1.4x (docs/performance.md).
AMD's Zen 4 is already tuned for 512 bits; CPUs without AVX-512BW are left as
they are.

The bits do not change: the kernels are integer code (exact in any order and
lane count), and Numba compiles without fastmath, so LLVM never reassociates
float arithmetic whatever the vector width (the trainer's float phase keeps its
bits: tools/training_fingerprint.py).

Numba reads its target features once, when its CPU context is created (at the
first ``numba.njit`` of the process), for the whole process.  So this runs
when promref is imported -- before any of its modules defines a kernel -- and
changes nothing when:

* the user set ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES`` (their choice wins);
* ``PROMREF_WIDE_VECTORS=0`` is set (opt out: LLVM's tuning as it is);
* Numba's CPU context already exists (too late; setting the features then
  would only make Numba's config disagree with the code it compiled).

The features are part of the key of Numba's on-disk cache, so machine code
compiled with the other setting is never reused by mistake.
"""
import os

PREFER_256 = "-prefer-256-bit"


def wider_features(features):
    """LLVM's feature string ``features`` with 512-bit vectors allowed, or None where they are not available."""
    flags = features.split(",")
    if "+avx512bw" not in flags or PREFER_256 in flags:
        return None
    return features + "," + PREFER_256


def in_use():
    """Whether Numba's target features in this process allow 512-bit vectors (ours or the user's)."""
    from numba.core import config
    return PREFER_256 in str(config.CPU_FEATURES or "").split(",")


def allow_512_bit_vectors():
    """Set Numba's CPU features to the host's plus ``-prefer-256-bit`` (see above); return whether it did."""
    if os.environ.get("PROMREF_WIDE_VECTORS", "1") == "0":
        return False
    if os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES"):
        return False
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features
    from numba.core.registry import cpu_target
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return False
    if "_toplevel_target_context" in vars(cpu_target):     # a kernel was already defined
        return False
    features = wider_features(get_host_cpu_features())
    if features is None:
        return False
    config.CPU_FEATURES = features
    return True
