"""Per-layer time of promref's numba backend next to ONNX Runtime's per-node time.

    python benchmarks/profile_layers.py --config cifar --batch 64 [--threads 1]

Times every promref layer (median of ``--repeats`` calls of its channel-major numba op
on the very inputs a forward pass gives it, from a trace; a 1x1 layer whose residual
add the engine fuses is timed fused, and the add's row then reads 0) and, with ``--ort``, ONNX Runtime's
kernel time for the matching node (its built-in profiler) of the uint8-activation
QOperator graph that ``python -m promref.bench --vs onnxruntime`` uses.
Set NUMBA_NUM_THREADS before starting it; ORT gets ``--threads``.  ``--forward`` also
times whole forward passes (``model.forward``): the difference between their minimum and
the sum of the layer times is what runs outside the kernels (Python, layout conversions).
"""
import argparse
import collections
import functools
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from promref import engine  # noqa: E402
from promref.bench import machine_line  # noqa: E402
from promref.kernels import fast  # noqa: E402
from promref.synthetic import random_model  # noqa: E402


def promref_layer_times(model, x, repeats):
    """{layer name: median seconds}: each channel-major op timed on the inputs the engine gives it."""
    model.forward(x, backend="numba")                          # compiles / loads the cache, fills layer caches
    _, trace = model.forward(x, backend="numba", trace=True)
    trace["input"] = x
    trace = {name: fast.to_channel_major(t) if t.ndim == 4 else t for name, t in trace.items()}
    zero_points = {"input": model.input.zero_point}
    zero_points.update({layer.name: layer.out_zero_point for layer in model.layers})
    plan = engine.fusion_plan(model)
    fused_adds = {add.name for add in plan.values()}
    times = {}
    for i, layer in enumerate(model.layers):
        if layer.name in fused_adds:
            times[layer.name] = 0.0                            # inside the 1x1 layer before it
            continue
        if i in plan:
            add = plan[i]
            residual = next(n for n in add.inputs if n != layer.name)
            table = fast.residual_table(add, layer.out_zero_point, zero_points[residual], model.rounding,
                                        project_first=add.inputs[0] == layer.name)
            op = functools.partial(fast.FUSED_OPS[layer.op], residual=trace[residual], table=table)
        else:
            op = fast.CHANNEL_MAJOR_OPS[layer.op]
        args = [trace[n] for n in layer.inputs] + [layer] + [zero_points[n] for n in layer.inputs]
        if layer.op != "add":
            args = [args[0], layer, args[2]]
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            op(*args, model.rounding)
            runs.append(time.perf_counter() - start)
        times[layer.name] = statistics.median(runs)
    return times


def forward_times(model, x, seconds=3.0):
    """Seconds of whole forward passes, repeated for ``seconds`` (at least 5)."""
    model.forward(x, backend="numba")
    runs, begin = [], time.perf_counter()
    while time.perf_counter() - begin < seconds or len(runs) < 5:
        start = time.perf_counter()
        model.forward(x, backend="numba")
        runs.append(time.perf_counter() - start)
    return runs


def ort_layer_times(model, x, threads, repeats):
    import onnxruntime as ort

    from promref.bench import qoperator_uint8
    proto = qoperator_uint8(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort_profile")
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    xu = (x.astype(np.int16) + 128).astype(np.uint8)
    for _ in range(repeats + 1):
        session.run(None, {"input": xu})
    events = json.load(open(session.end_profiling()))
    times = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            layer = e["name"].split(".q")[0].split(".clip")[0].split("/")[0]
            times[layer].append(e["dur"] * 1e-6)
    out = {}
    for k, v in times.items():
        per_run = len(v) // (repeats + 1)  # a layer may have several nodes (conv + clip)
        runs = [sum(v[i * per_run:(i + 1) * per_run]) for i in range(1, repeats + 1)] if per_run else v
        out[k] = statistics.median(runs)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="cifar")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ort", action="store_true")
    p.add_argument("--forward", action="store_true", help="also time whole forward passes")
    args = p.parse_args()
    model = random_model(args.config, args.width, "prom", seed=0)
    x = np.random.default_rng(0).integers(-128, 128, size=(args.batch, model.input.height, model.input.width, 3)
                                           ).astype(np.int8)
    ours = promref_layer_times(model, x, args.repeats)
    theirs = ort_layer_times(model, x, args.threads, args.repeats) if args.ort else {}
    by_op = collections.defaultdict(lambda: [0.0, 0.0])
    print(machine_line())
    print(f"{'layer':<16s} {'op':<18s} {'promref ms':>10s} {'ORT ms':>8s} {'ratio':>6s}")
    for layer in model.layers:
        a, b = ours[layer.name], theirs.get(layer.name, float("nan"))
        kind = layer.op if layer.op != "pointwise_ternary" else f"ternary.{layer.kind}"
        by_op[kind][0] += a
        by_op[kind][1] += b if b == b else 0.0
        print(f"{layer.name:<16s} {layer.op:<18s} {a * 1e3:10.2f} {b * 1e3:8.2f} {a / b:6.2f}"
              + ("  (fused into the layer before)" if a == 0.0 else ""))
    print()
    for kind, (a, b) in sorted(by_op.items(), key=lambda t: -t[1][0]):
        print(f"{kind:<24s} promref {a * 1e3:8.2f} ms   ORT {b * 1e3:8.2f} ms")
    total = sum(v[0] for v in by_op.values())
    print(f"{'total':<24s} promref {total * 1e3:8.2f} ms   ORT {sum(v[1] for v in by_op.values()) * 1e3:8.2f} ms")
    if args.forward:
        runs = forward_times(model, x)
        print(f"forward pass: min {min(runs) * 1e3:.2f} ms, median {statistics.median(runs) * 1e3:.2f} ms "
              f"({len(runs)} runs); outside the layer kernels: {(min(runs) - total) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
