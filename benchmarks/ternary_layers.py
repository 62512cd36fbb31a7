"""The ternary 1x1 layers alone: each layer's row kernel on its traced input, for several pixel blocks.

    NUMBA_NUM_THREADS=1 python benchmarks/ternary_layers.py --config cifar --batch 64 --blocks 512 1024
    NUMBA_NUM_THREADS=1 python benchmarks/ternary_layers.py --blocks engine --copies rule never

Prints, per ternary layer of a random width-1.0 PROM MobileNetV2, the minimum of
``--repeats`` calls of ``_pointwise_ternary`` (the "rows" method, one worker) for each
block ("engine": ``rows_block``, what the engine uses) and each way of reading a block's
rows (``--copies``: "rule", ``_row_sums.copies_blocks``; "always" with several blocks;
"never"), then the totals and the rate in signed terms (non-zero weights x pixels) per
second.  The variants alternate call by call, so a noisy machine slows them alike.  Used
for the kernel experiments of docs/performance.md.
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
from promref.kernels.fast._options import channel_group, pixel_block, rows_block  # noqa: E402
from promref.kernels.fast._row_sums import copies_blocks  # noqa: E402
from promref.kernels.fast._requant import is_double, requant_arrays  # noqa: E402
from promref.synthetic import random_model  # noqa: E402

ternary = importlib.import_module("promref.kernels.fast.pointwise_ternary")


COPIES = {"rule": copies_blocks, "always": lambda pixels, block: pixels > block, "never": lambda pixels, block: False}


def fastest(calls, repeats):
    """Minimum seconds of each of ``calls`` over ``repeats`` rounds (one call of each a round, after a warm-up)."""
    best = [float("inf")] * len(calls)
    for call in calls:
        call()
    for _ in range(repeats):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="cifar", choices=["cifar", "imagenet"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--blocks", nargs="+", default=["engine"], help="pixels per block, or 'engine'")
    p.add_argument("--copies", nargs="+", default=["rule"], choices=sorted(COPIES))
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
    variants = [(block, copies) for block in args.blocks for copies in args.copies]
    totals, terms = dict.fromkeys(variants, 0.0), 0
    for layer in (layer for layer in model.layers if layer.op == "pointwise_ternary"):
        channel_major = fast.to_channel_major(trace[layer.inputs[0]])
        cin, pixels = channel_major.shape[0], channel_major[0].size
        flat = np.ascontiguousarray(channel_major).reshape(cin, pixels)
        ptr, mid, rows, bias = ternary.prepare(layer, zero_points[layer.inputs[0]])
        multiplier, shift = requant_arrays(layer)
        output = (int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(model.rounding))
        out = np.empty((layer.out_channels, pixels), np.int8)
        terms += len(rows) * pixels
        calls = []
        for block, copies in variants:
            size = pixel_block(rows_block(cin) if block == "engine" else int(block), pixels)
            group = channel_group(pixels, layer.out_channels, size)
            calls.append(lambda size=size, group=group, copying=COPIES[copies](pixels, size): ternary._pointwise_ternary(
                flat, ptr, mid, rows, bias, multiplier, shift, *output, size, group, copying, 1,
                ternary.NO_RESIDUAL, ternary.NO_TABLE, out))
        line = f"{layer.name:12s} {cin:4d} -> {layer.out_channels:4d}, {pixels:6d} px"
        for variant, seconds in zip(variants, fastest(calls, args.repeats)):
            totals[variant] += seconds
            line += f"  {variant[0]}/{variant[1]}: {seconds * 1e3:6.2f} ms"
        print(line)
    for (block, copies), seconds in totals.items():
        print(f"block {block}, copies {copies}: {seconds * 1e3:.1f} ms in all, {terms / seconds / 1e9:.1f} G terms/s")

if __name__ == "__main__":
    main()
