"""promref vs the TOSA reference model on the TOSA export of a CIFAR-10 model.

    python benchmarks/tosa_agreement.py [WEIGHTS] [--rounding single double] [--images 10000]
                                        [--layer-images 100] [--backend numba] [--data DIR]

Exports WEIGHTS (default: the shipped weights/mbv2_prom.npz) in each rounding
mode (the same integer parameters with the mode switched: a "double" run is the
shipped network under TFLite-style double rounding) with ``build_tosa``, runs the
first N CIFAR-10 test images through the TOSA reference model (``tosa-tools``)
in batches of 50, and compares with promref: every layer's int8 output on the
first ``--layer-images`` images, the logits on all N.  Prints a running count
after each batch (so a partial run still reports what it compared) and one
summary line per mode; exits 1 on any mismatch.  promref's side runs on
``--backend`` (numba by default: tests/test_fast_kernels.py ties it to the
NumPy reference bit for bit; ``numpy`` is the reference itself, slower).
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from promref import load  # noqa: E402
from promref.data.cifar10 import load_cifar10  # noqa: E402
from promref.interop.tosa import TosaRunner  # noqa: E402
from promref.preprocess import pixels_to_int8  # noqa: E402

BATCH = 50


def compare_mode(model, x, layer_images, backend, log):
    """-> dict of counts for one rounding mode: layer values/mismatches, logits images/mismatches, top-1."""
    every, logits_only = TosaRunner(model, batch=BATCH), TosaRunner(model, batch=BATCH, every_layer=False)
    counts = dict(layer_images=0, layer_values=0, layer_mismatches=0, layers=0,
                  images=0, logit_mismatches=0, top1_agree=0)
    start = time.time()
    for at in range(0, len(x), BATCH):
        chunk = x[at:at + BATCH]
        traced = at < layer_images
        ref_logits, ref = model.forward(chunk, backend=backend, trace=True)
        got = (every if traced else logits_only)(chunk)
        if traced:
            counts["layer_images"] += len(chunk)
            counts["layers"] = len(ref)
            for name, want in ref.items():
                counts["layer_values"] += want.size
                counts["layer_mismatches"] += int((got[name] != want).sum())
        logits = got[model.layers[-1].name]
        counts["images"] += len(chunk)
        counts["logit_mismatches"] += int((logits != ref_logits).sum())
        counts["top1_agree"] += int((logits.argmax(1) == ref_logits.argmax(1)).sum())
        log(f"  [{model.rounding}] {counts['images']:,} images ({time.time() - start:.0f} s): "
            f"{counts['logit_mismatches']} logit mismatches; every layer on {counts['layer_images']} images: "
            f"{counts['layer_mismatches']} mismatches in {counts['layer_values']:,} values")
    counts["seconds"] = time.time() - start
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="?", default=os.path.join(os.path.dirname(HERE), "weights", "mbv2_prom.npz"))
    p.add_argument("--data", help="CIFAR-10 root")
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--layer-images", type=int, default=100, help="images compared at every layer (default 100)")
    p.add_argument("--rounding", nargs="+", choices=("single", "double"), default=["single", "double"])
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    args = p.parse_args()
    model = load(args.weights)
    images, _ = load_cifar10("test", root=args.data)
    x = pixels_to_int8(images[:args.images])
    bad = 0
    for rounding in args.rounding:
        model.rounding = rounding
        c = compare_mode(model, x, args.layer_images, args.backend, lambda line: print(line, flush=True))
        bad += c["layer_mismatches"] + c["logit_mismatches"]
        print(f"{args.weights} rounding {rounding}: logits on {c['images']:,} CIFAR-10 test images: "
              f"{c['logit_mismatches']} mismatches, top-1 agrees on {c['top1_agree']:,}; every layer "
              f"({c['layers']} layers) on {c['layer_images']} images: {c['layer_mismatches']} mismatches in "
              f"{c['layer_values']:,} values ({c['seconds']:.0f} s)", flush=True)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
