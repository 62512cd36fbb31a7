"""The generated C library as a program of the conformance subprocess protocol (docs/conformance.md).

    python -m promref.interop.c.conformance [--sanitize] REQUEST.json OUT_DIR
    python -m promref.interop.c.conformance --supported-ops        prints "model"

For a ``model`` case it exports the case's weights file with ``export_c``,
builds the host executable (cached under the temp directory by the file's
SHA-256 and the build flavour), runs the case's images through it with the
per-layer hook and writes every layer's int8 output as ``OUT_DIR/<layer>.bin``.
Per-op cases exit 77 (unsupported): the library runs whole networks.
``--sanitize`` builds with ``-fsanitize=address,undefined``.
"""
import hashlib
import json
import os
import sys
import tempfile

import numpy as np

from ...format import load
from .export import export_c
from .run import run_host
from .toolchain import build_host

EXIT_UNSUPPORTED = 77


def built_library(weights, sanitize):
    """(model, host executable) for a weights file, exported and compiled once per content."""
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    libdir = os.path.join(tempfile.gettempdir(), "promref-c-cache", digest)
    model = load(weights)
    binary = os.path.join(libdir, "build", "prom_host_asan" if sanitize else "prom_host")
    if not os.path.exists(binary):
        export_c(model, libdir)
        build_host(libdir, sanitize=sanitize, out=binary + f".tmp{os.getpid()}")
        os.replace(binary + f".tmp{os.getpid()}", binary)  # atomic: parallel checkers never see half a file
    return model, binary


def run_request(request_path, out_dir, sanitize=False):
    """Run one request of the protocol; returns the exit status."""
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    if request["op"] != "model":
        print(f"op {request['op']!r} not supported: the C library runs whole models", file=sys.stderr)
        return EXIT_UNSUPPORTED
    model, binary = built_library(request["weights"], sanitize)
    x = np.load(next(t["file"] for t in request["inputs"] if t["name"] == "x"), allow_pickle=False)
    trace = run_host(model, binary, x, trace=True)
    for name, values in trace.items():
        values.tofile(os.path.join(out_dir, f"{name}.bin"))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--supported-ops"]:
        print("model")
        return 0
    sanitize = argv[:1] == ["--sanitize"]
    argv = argv[1:] if sanitize else argv
    if len(argv) != 2:
        print("usage: python -m promref.interop.c.conformance [--sanitize] REQUEST.json OUT_DIR | --supported-ops",
              file=sys.stderr)
        return 2
    from ...errors import PromrefError
    try:
        return run_request(argv[0], argv[1], sanitize)
    except PromrefError as e:
        print(f"promref C runner: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
