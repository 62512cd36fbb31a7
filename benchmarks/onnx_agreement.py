"""promref vs ONNX Runtime on the exact ONNX export of a CIFAR-10 model, layer by layer.

    python benchmarks/onnx_agreement.py [WEIGHTS] [--data DIR] [--images 10000] [--threads 2]

Exports WEIGHTS (default: the shipped weights/mbv2_prom.npz) with
``build_onnx(model, every_layer=True)``, runs the first N CIFAR-10 test images
through ONNX Runtime and promref's numba backend, in batches of 250, and
prints the total mismatch count over every layer's int8 output and the logits,
the top-1 agreement, and the last batch's per-layer table.  Data come from
``--data``, ``$PROMREF_CIFAR10`` or ``~/.cache/promref/cifar10``.  Needs
``pip install onnx onnxruntime`` (promref's "interop" extra).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from promref import load  # noqa: E402
from promref.data.cifar10 import load_cifar10  # noqa: E402
from promref.interop.onnx.export import build_onnx, compare, ort_session  # noqa: E402
from promref.preprocess import pixels_to_int8  # noqa: E402
from promref.progress import bar  # noqa: E402

BATCH = 250


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="?", default=os.path.join(os.path.dirname(HERE), "weights", "mbv2_prom.npz"))
    p.add_argument("--data", help="CIFAR-10 root")
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args()
    model = load(args.weights)
    images, _ = load_cifar10("test", root=args.data)
    x = pixels_to_int8(images[:args.images])
    start = time.time()
    session = ort_session(build_onnx(model, every_layer=True), threads=args.threads)
    mismatches = values = agree = 0
    progress = bar(len(x), "ONNX agreement", quiet=args.quiet)
    for at in range(0, len(x), BATCH):
        result = compare(model, session, x[at:at + BATCH], backend="numba")
        progress.update(len(x[at:at + BATCH]))
        mismatches += result.mismatches
        agree += result.top1_agree
        values += sum(d.elements for d in result.tensors)
    progress.close()
    print(f"{args.weights}: {len(x):,} CIFAR-10 test images, every layer and the logits: "
          f"{mismatches} mismatches in {values:,} values, top-1 agrees on {agree:,} of {len(x):,} "
          f"({time.time() - start:.0f} s)")
    print("last batch:\n" + result.table())
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
