"""promref vs LiteRT (reference kernels) and TFLite Micro on an *exported* CIFAR-10 model.

    python benchmarks/tflite_export_agreement.py [WEIGHTS] [--data DIR] [--images 10000]
        [--layer-images 10000] [--tflm-images 1000] [--tflm-layer-images 1000] [--xnnpack-images 10000]

Exports WEIGHTS (default: the shipped weights/mbv2_prom.npz) with
``promref export tflite``'s code: exactly when TFLite can derive the model's
integers, else its TFLite-derived twin (rounding "double", integers re-derived
from float32 scales; the twin's and the original's CIFAR-10 top-1 are
printed).  Then, on the first N CIFAR-10 test images, in batches of 100:

* LiteRT ``OpResolverType.BUILTIN_REF``: mismatches at the logits on
  ``--images``, at every layer on the first ``--layer-images``;
* TFLite Micro: logits on ``--tflm-images``, every layer on the first
  ``--tflm-layer-images``;
* LiteRT's default kernels (XNNPACK): how many logits differ (measured, not
  asserted; XNNPACK does not keep delegated intermediates).

Needs ``pip install tflite ai-edge-litert tflite-micro``.
"""
import argparse
import dataclasses
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from promref import load  # noqa: E402
from promref.data.cifar10 import load_cifar10  # noqa: E402
from promref.interop.tflite.exporter import build_tflite  # noqa: E402
from promref.interop.tflite.runners import run_litert, run_tflm  # noqa: E402
from promref.interop.tflite.scales import TfliteExportError, tflite_derived  # noqa: E402
from promref.preprocess import pixels_to_int8  # noqa: E402

BATCH = 100


class Tally:
    def __init__(self, name):
        self.name, self.images, self.layer_images, self.logit_bad, self.layer_bad, self.values = name, 0, 0, 0, 0, 0

    def add(self, trace, theirs, logits_name, every_layer):
        n = len(theirs[logits_name])
        self.images += n
        self.logit_bad += int(np.count_nonzero(theirs[logits_name] != trace[logits_name][:n]))
        if every_layer:
            self.layer_images += n
            for k in theirs:
                self.layer_bad += int(np.count_nonzero(theirs[k] != trace[k][:n]))
                self.values += theirs[k].size

    def line(self, layers):
        return (f"{self.name}: logits on {self.images:,} images: {self.logit_bad} mismatches; every layer "
                f"({layers} layers, {self.values:,} values) on {self.layer_images:,} images: {self.layer_bad} mismatches")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="?", default=os.path.join(os.path.dirname(HERE), "weights", "mbv2_prom.npz"))
    p.add_argument("--data", help="CIFAR-10 root")
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--layer-images", type=int, default=10_000)
    p.add_argument("--tflm-images", type=int, default=1_000)
    p.add_argument("--tflm-layer-images", type=int, default=1_000)
    p.add_argument("--xnnpack-images", type=int, default=10_000)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    original = load(args.weights)
    images, labels = load_cifar10("test", root=args.data)
    x = pixels_to_int8(images)
    try:
        export, model = build_tflite(original), original
        print(f"{args.weights}: exported exactly ({len(export.data):,} bytes)")
    except TfliteExportError as e:
        print(f"{args.weights}: exact export refused: {e}")
        if original.rounding != "double":
            try:
                build_tflite(dataclasses.replace(original, rounding="double"))
            except TfliteExportError as e2:
                print(f"  and in rounding 'double': {e2}")
        model, changed = tflite_derived(original)
        export = build_tflite(model)
        print(f"TFLite-derived twin: {changed} of {len(model.layers)} layers' integers re-derived")
    logits_name = model.layers[-1].name
    ref, micro, xnn = Tally("LiteRT BUILTIN_REF"), Tally("TFLite Micro"), Tally("LiteRT default (XNNPACK)")
    top1_xnn_differs = correct_model = correct_original = top1_twin_differs = 0
    start = time.time()
    for at in range(0, max(args.images, args.tflm_images, args.xnnpack_images), BATCH):
        xb = x[at:at + BATCH]
        _, trace = model.forward(xb, trace=True)
        ours = np.argmax(trace[model.layers[-1].name], 1)
        correct_model += int(np.sum(ours == labels[at:at + BATCH]))
        if model is not original:
            theirs = np.argmax(original.forward(xb), 1)
            correct_original += int(np.sum(theirs == labels[at:at + BATCH]))
            top1_twin_differs += int(np.sum(theirs != ours))
        if at < args.images:
            ref.add(trace, run_litert(model, xb, export=export), logits_name, at < args.layer_images)
        if at < args.tflm_images:
            micro.add(trace, run_tflm(model, xb, export=export), logits_name, at < args.tflm_layer_images)
        if at < args.xnnpack_images:
            theirs = run_litert(model, xb, resolver="default", export=export)
            xnn.add(trace, {logits_name: theirs[logits_name]}, logits_name, False)
            top1_xnn_differs += int(np.sum(np.argmax(theirs[logits_name], 1) != np.argmax(trace[logits_name], 1)))
        if (at // BATCH) % 10 == 0:
            print(f"  {at + len(xb):,} images, {time.time() - start:.0f} s", flush=True)
    layers, n = len(model.layers), at + len(xb)
    print(f"CIFAR-10 top-1 on {n:,} test images: exported model ({model.rounding}) {correct_model / n:.4f}"
          + (f", original ({original.rounding}) {correct_original / n:.4f}; top-1 differs on {top1_twin_differs}"
             if model is not original else ""))
    print(ref.line(layers))
    print(micro.line(layers))
    print(f"{xnn.name}: {xnn.logit_bad} of {xnn.images * model.num_classes:,} logits differ from the reference; "
          f"top-1 differs on {top1_xnn_differs} of {xnn.images:,} images")
    print(f"({time.time() - start:.0f} s)")
    return 0 if ref.logit_bad + ref.layer_bad + micro.logit_bad + micro.layer_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
