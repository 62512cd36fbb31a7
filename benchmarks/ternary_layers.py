"""The ternary 1x1 layers alone: each layer's row kernel on its traced input, for several pixel blocks.

    NUMBA_NUM_THREADS=1 python benchmarks/ternary_layers.py --config cifar --batch 64 --blocks 512 1024

Prints, per ternary layer of a random width-1.0 PROM MobileNetV2, the minimum of
``--repeats`` calls of ``_pointwise_ternary`` (the "rows" method, one worker) for each
block, then the totals and the rate in signed terms (non-zero weights x pixels) per
second.  Used for the kernel experiments of docs/performance.md.
"""
import argparse
import importlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from promref.bench import machine_line  # noqa: E402
from promref.kernels import fast  # noqa: E402
from promref.kernels.fast._options import channel_group, pixel_block  # noqa: E402
from promref.kernels.fast._requant import is_double, requant_arrays  # noqa: E402
from promref.synthetic import random_model  # noqa: E402

ternary = importlib.import_module("promref.kernels.fast.pointwise_ternary")


def fastest(call, repeats):
    """Minimum seconds of ``repeats`` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="cifar", choices=["cifar", "imagenet"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--blocks", type=int, nargs="+", default=[512])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    model = random_model(args.config, 1.0, "prom", seed=0)
    x = np.random.default_rng(0).integers(-128, 128, (args.batch, model.input.height, model.input.width, 3)
                                          ).astype(np.int8)
    _, trace = model.forward(x, backend="numba", trace=True)
    trace["input"] = x
    zero_points = {"input": model.input.zero_point}
    zero_points.update({layer.name: layer.out_zero_point for layer in model.layers})
    print(machine_line())
    totals, terms = dict.fromkeys(args.blocks, 0.0), 0
    for layer in (layer for layer in model.layers if layer.op == "pointwise_ternary"):
        channel_major = fast.to_channel_major(trace[layer.inputs[0]])
        cin, pixels = channel_major.shape[0], channel_major[0].size
        flat = np.ascontiguousarray(channel_major).reshape(cin, pixels)
        ptr, mid, rows, bias = ternary.prepare(layer, zero_points[layer.inputs[0]])
        multiplier, shift = requant_arrays(layer)
        output = (int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(model.rounding))
        out = np.empty((layer.out_channels, pixels), np.int8)
        terms += len(rows) * pixels
        line = f"{layer.name:12s} {cin:4d} -> {layer.out_channels:4d}, {pixels:6d} px"
        for block in args.blocks:
            size = pixel_block(block, pixels)
            group = channel_group(pixels, layer.out_channels, size)
            seconds = fastest(lambda: ternary._pointwise_ternary(
                flat, ptr, mid, rows, bias, multiplier, shift, *output, size, group, 1,
                ternary.NO_RESIDUAL, ternary.NO_TABLE, out), args.repeats)
            totals[block] += seconds
            line += f"  {block}: {seconds * 1e3:6.2f} ms"
        print(line)
    for block, seconds in totals.items():
        print(f"block {block}: {seconds * 1e3:.1f} ms in all, {terms / seconds / 1e9:.1f} G terms/s")


if __name__ == "__main__":
    main()
