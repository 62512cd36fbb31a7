"""promref vs the TOSA reference model on the TOSA export of a CIFAR-10 model; resumable.

    python benchmarks/tosa_agreement.py [WEIGHTS] [--rounding single double] [--images 10000]
                                        [--layer-images 100] [--backend numba] [--data DIR]
                                        [--chunk 50] [--jobs 1] [--state FILE] [--resume]

Exports WEIGHTS (default: the shipped weights/mbv2_prom.npz) in each rounding
mode (the same integer parameters with the mode switched: a "double" run is the
shipped network under TFLite-style double rounding) with ``build_tosa``, runs the
first N CIFAR-10 test images (file order) through the TOSA reference model
(``tosa-tools``) in chunks of --chunk images (one reference-model call each),
and compares with promref: every layer's int8 output on the first
``--layer-images`` images (the every-layer graph), the logits on all N (the
logits-only graph).  Each graph is built and serialised once per process and
chunk size and reused for every chunk; --jobs N forks N processes that take
the chunks in turn (the state file still grows in image order).  promref's side runs on ``--backend``
(numba by default: tests/test_fast_kernels.py ties it to the NumPy reference
bit for bit; ``numpy`` is the reference itself, slower).

Every finished chunk is appended to the state file (default
~/.cache/promref/agreement/tosa_agreement-<weights>.jsonl; see
benchmarks/agreement_state.py): its mismatches per layer, images, and the
seconds spent in the reference model and in promref.  With --resume a rerun
continues each rounding mode from its first image not done, provided the
weights, the exported graphs and tosa-tools' version are the same.  The
summary lines (one per mode) are computed from the state file; exits 1 on any
mismatch or when a mode has not reached --images.
"""
import argparse
import dataclasses
import multiprocessing
import os
import sys
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from agreement_state import AgreementState, default_state_path, sha256_of  # noqa: E402
from promref import load  # noqa: E402
from promref.data.cifar10 import load_cifar10  # noqa: E402
from promref.interop.tosa import build_tosa, run_flatbuffer  # noqa: E402
from promref.preprocess import pixels_to_int8  # noqa: E402

MODES = ("single", "double")


class Graphs:
    """The logits-only and every-layer TOSA graphs of one model, built once per batch size."""

    def __init__(self, model):
        self.model, self.built = model, {}

    def __call__(self, n, every_layer):
        key = (n, every_layer)
        if key not in self.built:
            self.built[key] = build_tosa(self.model, batch=n, every_layer=every_layer)
        return self.built[key]


def chunks(done, images, layer_images, size):
    """[(start, stop, every layer?)] from image ``done`` on; no chunk straddles ``layer_images``."""
    out, at = [], done
    while at < images:
        stop = min(at + size, images, layer_images if at < layer_images else images)
        out.append((at, stop, at < layer_images))
        at = stop
    return out


def check_chunk(model, graphs, x, every_layer, backend):
    """One chunk through both sides -> (counts dict for the state file)."""
    start = time.time()
    data, names = graphs(len(x), every_layer)
    build_seconds = time.time() - start
    start, cpu = time.time(), time.process_time()
    got = dict(zip(names, run_flatbuffer(data, [x])))
    tosa_seconds, tosa_cpu = time.time() - start, time.process_time() - cpu
    start, cpu = time.time(), time.process_time()
    ref_logits, ref = model.forward(x, backend=backend, trace=True)
    promref_seconds, promref_cpu = time.time() - start, time.process_time() - cpu
    logits = got[model.layers[-1].name]
    compared = names if every_layer else [model.layers[-1].name]
    return dict(layer_mismatches={k: int((got[k] != ref[k]).sum()) for k in compared},
                values=int(sum(ref[k].size for k in compared)), every_layer=every_layer,
                logit_mismatches=int((logits != ref_logits).sum()),
                top1_agree=int((logits.argmax(1) == ref_logits.argmax(1)).sum()),
                build_seconds=round(build_seconds, 3), tosa_seconds=round(tosa_seconds, 3),
                promref_seconds=round(promref_seconds, 3), backend=backend,
                tosa_cpu_seconds=round(tosa_cpu, 3), promref_cpu_seconds=round(promref_cpu, 3))


#: what forked workers inherit: (model, Graphs, images, backend) of the mode being run
_WORK = {}


def _work(task):
    at, stop, every_layer = task
    model, graphs, x, backend = _WORK["context"]
    return check_chunk(model, graphs, x[at:stop], every_layer, backend)


def checked_chunks(model, x, args, tasks):
    """Counts of each task (start, stop, every layer?) in task order: in this process, or in --jobs forked ones."""
    _WORK["context"] = (model, Graphs(model), x, args.backend)
    if args.jobs == 1:
        yield from map(_work, tasks)
        return
    model.forward(x[:1], backend=args.backend)  # compile numba's kernels once, before the fork
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        yield from pool.imap(_work, tasks)  # in order, so the state file stays a prefix of the images


def run_mode(model, x, args, state):
    """Continue one rounding mode's chunks from the state file's first image not done."""
    started = time.time()
    tasks = chunks(state.done(model.rounding), len(x), args.layer_images, args.chunk)
    for (at, stop, every_layer), counts in zip(tasks, checked_chunks(model, x, args, tasks)):
        seconds = counts["build_seconds"] + counts["tosa_seconds"] + counts["promref_seconds"]
        state.record(model.rounding, at, stop, seconds, jobs=args.jobs, **counts)
        traced = [c for c in state.part_chunks(model.rounding) if c["every_layer"]]
        print(f"  [{model.rounding}] {stop:,} images ({time.time() - started:.0f} s this run, "
              f"{(stop - at) / seconds:.2f} images/s; build {counts['build_seconds']:.1f} s, TOSA "
              f"{counts['tosa_seconds']:.1f} s, promref {counts['promref_seconds']:.1f} s): "
              f"{state.total(model.rounding, 'logit_mismatches')} logit mismatches; every layer on "
              f"{sum(c['stop'] - c['start'] for c in traced)} images: "
              f"{sum(sum(c['layer_mismatches'].values()) for c in traced)} mismatches", flush=True)


def summary(weights, state, rounding, goal):
    """The mode's summary line from the state file -> (mismatches, reached the goal?)."""
    chunks_ = state.part_chunks(rounding)
    traced = [c for c in chunks_ if c["every_layer"]]
    layer_bad = sum(sum(c["layer_mismatches"].values()) for c in traced)
    logit_bad = state.total(rounding, "logit_mismatches")
    images, tosa = state.done(rounding), sum(c["tosa_seconds"] for c in chunks_)
    promref_seconds = sum(c["promref_seconds"] for c in chunks_)
    cpu = {k: sum(c.get(f"{k}_cpu_seconds", 0) for c in chunks_) for k in ("tosa", "promref")}
    layers = max((len(c["layer_mismatches"]) for c in traced), default=0)
    print(f"{weights} rounding {rounding}: logits on {images:,} CIFAR-10 test images: {logit_bad} mismatches, "
          f"top-1 agrees on {state.total(rounding, 'top1_agree'):,}; every layer ({layers} layers) on "
          f"{sum(c['stop'] - c['start'] for c in traced)} images: {layer_bad} mismatches in "
          f"{sum(c['values'] for c in traced):,} values ({state.seconds(rounding):.0f} s, of which TOSA "
          f"{tosa:.0f} s, promref {promref_seconds:.0f} s: {images / max(state.seconds(rounding), 1e-9):.2f} images/s; "
          f"CPU time: TOSA {cpu['tosa']:.0f} s, promref {cpu['promref']:.0f} s)"
          + ("" if images >= goal else f" -- INCOMPLETE: {images:,} of {goal:,}; rerun with --resume"), flush=True)
    return layer_bad + logit_bad, images >= goal


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="?", default=os.path.join(os.path.dirname(HERE), "weights", "mbv2_prom.npz"))
    p.add_argument("--data", help="CIFAR-10 root")
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--layer-images", type=int, default=100, help="images compared at every layer (default 100)")
    p.add_argument("--rounding", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    p.add_argument("--chunk", type=int, default=50, help="images per reference-model call and state record")
    p.add_argument("--jobs", type=int, default=1, help="forked processes, one chunk each at a time (default 1)")
    p.add_argument("--state", help="state file (default ~/.cache/promref/agreement/tosa_agreement-<weights>.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the state file's run instead of starting over")
    args = p.parse_args()
    if args.images < 0 or args.layer_images < 0 or min(args.chunk, args.jobs) < 1:
        p.error("--images and --layer-images must be >= 0, --chunk and --jobs >= 1")
    model = load(args.weights)
    # what the chunks were checked against: the weights and each mode's batch-1 graphs (the exporter's output)
    identity = dict(benchmark="tosa_agreement", weights_sha256=sha256_of(args.weights),
                    tosa_tools=metadata.version("tosa-tools"), images="CIFAR-10 test, in file order")
    for mode in MODES:
        for every_layer in (False, True):
            data, _ = build_tosa(dataclasses.replace(model, rounding=mode), batch=1, every_layer=every_layer)
            identity[f"graph_sha256_{mode}_{'layers' if every_layer else 'logits'}"] = sha256_of(data)
    stem = os.path.splitext(os.path.basename(args.weights))[0]
    state = AgreementState(args.state or default_state_path(f"tosa_agreement-{stem}"), identity, args.resume)
    print(f"state: {state.path}; done so far: "
          + ", ".join(f"{mode} {state.done(mode):,}" for mode in MODES), flush=True)
    images, _ = load_cifar10("test", root=args.data)
    x = pixels_to_int8(images[:args.images])
    for rounding in args.rounding:
        run_mode(dataclasses.replace(model, rounding=rounding), x, args, state)
    bad, complete = 0, True
    for rounding in args.rounding:
        b, c = summary(args.weights, state, rounding, args.images)
        bad, complete = bad + b, complete and c
    return 0 if bad == 0 and complete else 1


if __name__ == "__main__":
    sys.exit(main())
