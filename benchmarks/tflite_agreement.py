"""promref vs LiteRT (TFLite reference kernels), layer by layer, on the sample images.

    python benchmarks/tflite_agreement.py [--data ../shared/data] [--images 100]
                                          [--backend numba|numpy] [--sensitivity N]

Imports both MobileNetV2 .tflite models of ``<data>/models`` with
``promref.interop.import_tflite``, runs them in promref (rounding "double")
and in LiteRT with ``OpResolverType.BUILTIN_REF`` on the same uint8 pixels,
and prints, per model, the mismatch count and max |diff| of every layer and
the top-1 agreement.  Needs ``pip install tflite ai-edge-litert``.

``--sensitivity N`` also shows, on the first N images, that the comparison is
sharp: it re-runs with plausible-but-wrong variants of TFLite's arithmetic
(double instead of float32 product in the uint8 multipliers; the older
"rescale, then divide by the count" MEAN) and counts their mismatches.
"""
import argparse
import copy
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from promref import arith  # noqa: E402
from promref.interop import import_tflite  # noqa: E402
from promref.interop.tflite.litert_compare import (compare, default_backend, litert_interpreter,  # noqa: E402
                                            load_sample_images)
from promref.interop.tflite.prepare import conv_multipliers  # noqa: E402
from promref.progress import bar  # noqa: E402

MODELS = ("mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite")


def default_data():
    return os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))


def double_product_variant(model):
    """(the model with every conv/FC multiplier derived from the double product, layers changed)."""
    variant = copy.deepcopy(model)
    scales = {"input": model.input.scale}
    changed = 0
    for layer in variant.layers:
        scales[layer.name] = layer.out_scale
        if layer.weight_scale is not None:
            m, s = conv_multipliers(scales[layer.inputs[0]], layer.weight_scale, layer.out_scale)
            if not (np.array_equal(m, layer.multiplier) and np.array_equal(s, layer.shift)):
                changed += 1
                layer.multiplier, layer.shift = m, s
                layer.cache.clear()
    return variant, changed


def old_mean(x, in_zp, out_zp, in_scale, out_scale):
    """TF <= 2.1x reference_integer_ops::Mean: MBQM(sum - n*zp, M0, s0), then / n half away from zero."""
    n = x.shape[1] * x.shape[2]
    m0, s0 = arith.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    acc = arith.scale_double(x.astype(np.int64).sum(axis=(1, 2)) - n * in_zp, m0, s0)
    acc = np.where(acc > 0, (acc + n // 2) // n, -((-acc + n // 2) // n))
    return np.clip(acc + out_zp, -128, 127)


def sensitivity(model, path, images, backend):
    print(f"  sensitivity on {len(images)} images:")
    variant, changed = double_product_variant(model)
    if changed:
        result = compare(variant, path, images, backend=backend)
        bad = [s for s in result.layers if s.mismatches]
        print(f"    double (not float32) input*filter product changes {changed} multipliers: "
              f"{result.total_mismatches} mismatching values in {len(bad)} tensors; "
              f"top-1 agreement {result.top1_agree}/{result.images}")
    if any(layer.name == "pool.mean" for layer in model.layers):
        mean = model.layer("pool.mean")
        src = model.layer(mean.inputs[0])
        x = (images.astype(np.int16) - 128).astype(np.int8)
        _, trace = model.forward(x, backend=backend, trace=True)
        interpreter = litert_interpreter(path)
        tensor = model.metadata["tflite"]["tensors"]["pool.mean"]
        bad = 0
        for n in range(len(images)):
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images[n:n + 1])
            interpreter.invoke()
            ref = interpreter.get_tensor(tensor).astype(np.int16).ravel()
            ours = old_mean(trace[src.name][n:n + 1], src.out_zero_point, mean.out_zero_point,
                            src.out_scale, mean.out_scale).ravel()
            bad += int(np.count_nonzero(ours != ref))
        print(f"    MEAN as rescale-then-divide (older TFLite): {bad} mismatching values of "
              f"{len(images) * mean.out_channels}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=default_data(), help="the shared data folder (default: ../shared/data)")
    parser.add_argument("--images", type=int, default=100, help="how many sample images (default: all 100)")
    parser.add_argument("--backend", default=None, help="promref backend (default: numba if available)")
    parser.add_argument("--sensitivity", type=int, default=0, metavar="N",
                        help="also test wrong arithmetic variants on the first N images")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    backend = args.backend or default_backend()
    names, images = load_sample_images(os.path.join(args.data, "imagenet-samples"), limit=args.images)
    labels = os.path.join(args.data, "models", "imagenet_labels.txt")
    failures = 0
    for filename in bar(None, "TFLite agreement", unit="model", quiet=args.quiet, iterable=MODELS):
        path = os.path.join(args.data, "models", filename)
        start = time.perf_counter()
        model = import_tflite(path, labels=labels)
        result = compare(model, path, images, backend=backend)
        print(result.table())
        for note in model.metadata["tflite"]["notes"]:
            print(f"  note: {note}")
        print(f"  ({time.perf_counter() - start:.1f} s)")
        if args.sensitivity:
            sensitivity(model, path, images[:args.sensitivity], backend)
        print()
        failures += result.total_mismatches != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
