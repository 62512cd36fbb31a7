"""512-bit vectors (promref._vector_width): when they are allowed, and that they change no bit."""
import hashlib
import os
import subprocess
import sys

import numpy as np

import promref
from promref import _vector_width
from promref.synthetic import random_model

HERE = os.path.dirname(os.path.abspath(__file__))


def forward_digest():
    """sha256 of a numba forward pass (logits and every traced tensor) of a small random network."""
    model = random_model("cifar", 0.5, "prom", seed=3)
    x = np.random.default_rng(7).integers(-128, 128, (3, 32, 32, 3)).astype(np.int8)
    logits, trace = model.forward(x, backend="numba", trace=True)
    np.testing.assert_array_equal(logits, model.forward(x, backend="numpy"))
    digest = hashlib.sha256(logits.tobytes())
    for name in sorted(trace):
        digest.update(name.encode() + trace[name].tobytes())
    return digest.hexdigest()


def _child(code, **env):
    """What ``code`` prints in a fresh interpreter with ``env`` (and no NUMBA_CPU_* of ours)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU")}
    environment.update(env)
    prelude = f"import sys; sys.path.insert(0, {HERE!r}); import promref; "
    result = subprocess.run([sys.executable, "-c", prelude + code], env=environment, capture_output=True,
                            text=True, timeout=600, check=True)
    return result.stdout.split()


def test_wider_features_adds_the_flag_only_with_avx512bw():
    assert _vector_width.wider_features("+avx2,+avx512f,+avx512bw") == "+avx2,+avx512f,+avx512bw,-prefer-256-bit"
    assert _vector_width.wider_features("+avx2,+avx512f,-avx512bw") is None       # no 16-bit lanes
    assert _vector_width.wider_features("+avx2,+fma") is None
    assert _vector_width.wider_features("+avx512bw,-prefer-256-bit") is None       # already there


def test_the_user_and_the_opt_out_win():
    show = ("from numba.core import config; "
            "print(promref.WIDE_VECTORS, str(config.CPU_FEATURES).endswith(',-prefer-256-bit'))")
    assert _child(show, PROMREF_WIDE_VECTORS="0") == ["False", "False"]
    assert _child(show, NUMBA_CPU_NAME="generic") == ["False", "False"]
    late = "import os, numba; numba.njit(lambda: 0)(); os.environ['PROMREF_WIDE_VECTORS'] = '1'; " \
           "print(promref._vector_width.allow_512_bit_vectors())"
    assert _child(late, PROMREF_WIDE_VECTORS="0") == ["False"]      # a kernel exists: too late to change


def test_both_vector_widths_give_the_same_bits():
    """The child compiles the kernels with the other setting; on a CPU without AVX-512BW both are the same."""
    other = "1" if not promref.WIDE_VECTORS else "0"
    wide, digest = _child("import test_vector_width as t; print(promref.WIDE_VECTORS, t.forward_digest())",
                          PROMREF_WIDE_VECTORS=other)
    if promref.WIDE_VECTORS:
        assert wide == "False"
    assert digest == forward_digest()


def test_in_use_reports_what_import_set():
    if not os.environ.get("NUMBA_CPU_FEATURES"):
        assert _vector_width.in_use() == promref.WIDE_VECTORS
    show = "print(promref._vector_width.in_use())"
    assert _child(show, PROMREF_WIDE_VECTORS="0") == ["False"]
