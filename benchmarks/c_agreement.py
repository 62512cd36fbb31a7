"""The generated C library (promref export c) against promref, bit for bit; resumable.

    python benchmarks/c_agreement.py [WEIGHTS] [--data DIR] [--images 10000] [--trace-images 100]
                                     [--mcu-images 20] [--jobs 2] [--random-images 4]
                                     [--chunk 500] [--mcu-chunk 5] [--state FILE] [--resume]

Parts, in this order (the short ones first, the long sweep last):

1. ``random``: random PROM and int8 models of both configurations (cifar width
   0.35, imagenet width 0.1) in both rounding modes, --random-images each,
   every layer, on the host.
2. ``host_trace``: WEIGHTS (default weights/mbv2_prom.npz) exported and built
   with the host compiler (-std=c99 -Wall -Wextra -Werror -O2); the first
   --trace-images CIFAR-10 test images compared with promref at every layer.
3. ``mcu``: the same sources built for a Cortex-M4 (arm-none-eabi-gcc); the
   first --mcu-images run under qemu-system-arm (mps2-an386) in chunks of
   --mcu-chunk, compared at every layer; flash and RAM printed.
4. ``host_logits``: the first --images test images, in chunks of --chunk (each
   split over --jobs host processes), int8 logits compared with promref's
   numba backend (tests/test_fast_kernels.py ties it to the NumPy reference).

Every finished chunk is appended to the state file (default
~/.cache/promref/agreement/c_agreement-<weights>.jsonl; see
benchmarks/agreement_state.py): mismatches per layer, images, seconds.  With
--resume a rerun skips what the file holds and continues each part from its
first image not done, provided the weights, the generated library's sources
and the compilers are the same.  The summary is computed from the file.
Prints every mismatch count; exits 0 only when all are 0.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from agreement_state import AgreementState, default_state_path, sha256_of  # noqa: E402
from promref import load  # noqa: E402
from promref.data.cifar10 import load_cifar10  # noqa: E402
from promref.interop.c import export_c  # noqa: E402
from promref.interop.c import run, toolchain  # noqa: E402
from promref.preprocess import pixels_to_int8  # noqa: E402
from promref.synthetic import random_model  # noqa: E402

RANDOM_MODELS = [(config, width, scheme, rounding) for config, width in (("cifar", 0.35), ("imagenet", 0.1))
                 for scheme in ("prom", "int8") for rounding in ("single", "double")]


def per_layer(expected, got):
    """{layer: mismatching values} of two {layer: array} dicts (the keys of ``expected``)."""
    return {k: int((np.asarray(expected[k]) != got[k]).sum()) for k in expected}


def library_sha256(outdir):
    """sha256 over the generated sources (names and bytes), not the build folder or the report."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(outdir):
        dirs[:] = sorted(d for d in dirs if d != "build")
        for name in sorted(files):
            if name != "prom_export.json":
                path = os.path.join(root, name)
                h.update(os.path.relpath(path, outdir).encode() + b"\0" + sha256_of(path).encode())
    return h.hexdigest()


def compiler_version(cc):
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return None


def host_logits_parallel(binary, x, jobs, work):
    """Logits of all images, the image set split into ``jobs`` host processes."""
    parts = np.array_split(np.arange(len(x)), max(1, min(jobs, len(x))))
    procs = []
    for j, idx in enumerate(parts):
        src, dst = os.path.join(work, f"in{j}.bin"), os.path.join(work, f"out{j}.bin")
        x[idx].tofile(src)
        procs.append((dst, subprocess.Popen([binary, src, dst])))
    outs = []
    for dst, p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{binary} failed")
        outs.append(np.fromfile(dst, np.int8))
    return np.concatenate(outs).reshape(len(x), -1)


def part_random(args, state, work):
    if args.random_images == 0 or state.done("random") >= len(RANDOM_MODELS):
        return
    rng = np.random.default_rng(0)
    start, layers, arenas = time.time(), {}, {}
    for config, width, scheme, rounding in RANDOM_MODELS:
        model = random_model(config, width, scheme, seed=1, rounding=rounding)
        export = export_c(model, os.path.join(work, f"{config}_{scheme}_{rounding}"))
        binary = toolchain.build_host(export.outdir)
        size = model.input.height
        x = rng.integers(-128, 128, (args.random_images, size, size, 3)).astype(np.int8)
        _, trace = model.forward(x, trace=True)
        key = f"{config} w{width} {scheme} {rounding}"
        layers[key] = sum(per_layer(trace, run.run_host(model, binary, x, trace=True)).values())
        arenas[key] = export.arena_bytes
        print(f"random {key}: {len(x)} images x {len(trace)} layers, {layers[key]} mismatches, "
              f"arena {export.arena_bytes} B", flush=True)
    state.record("random", 0, len(RANDOM_MODELS), time.time() - start, images_each=args.random_images,
                 mismatches_per_model=layers, arena_bytes=arenas)


def part_host_trace(args, state, model, binary, x):
    at = state.done("host_trace")
    if at >= args.trace_images:
        return
    start, xt = time.time(), x[at:args.trace_images]
    _, trace = model.forward(xt, trace=True)
    counts = per_layer(trace, run.run_host(model, binary, xt, trace=True))
    state.record("host_trace", at, args.trace_images, time.time() - start, layer_mismatches=counts,
                 values=int(sum(v.size for v in trace.values())))
    print(f"host every layer: images [{at}, {args.trace_images}) x {len(trace)} layers, "
          f"{sum(counts.values())} mismatches ({time.time() - start:.0f} s)", flush=True)


def part_mcu(args, state, model, elf, x):
    for at in range(state.done("mcu"), args.mcu_images, args.mcu_chunk):
        stop = min(at + args.mcu_chunk, args.mcu_images)
        start, xm = time.time(), x[at:stop]
        got, info = run.run_qemu(model, elf, xm, "cortex-m4", timeout=3600)
        _, trace = model.forward(xm, trace=True)
        counts = per_layer(trace, got)
        sizes = toolchain.mcu_sizes(elf)
        state.record("mcu", at, stop, time.time() - start, layer_mismatches=counts, sizes=sizes,
                     stack_bytes=info.get("stack_bytes"), values=int(sum(v.size for v in trace.values())))
        print(f"Cortex-M4 (qemu mps2-an386) every layer: images [{at}, {stop}), {sum(counts.values())} "
              f"mismatches ({time.time() - start:.0f} s)", flush=True)


def part_host_logits(args, state, model, binary, x, work):
    logits_name = model.layers[-1].name
    for at in range(state.done("host_logits"), args.images, args.chunk):
        stop = min(at + args.chunk, args.images)
        start, xc = time.time(), x[at:stop]
        got = host_logits_parallel(binary, xc, args.jobs, work)
        c_seconds = time.time() - start
        want = model.forward(xc)
        state.record("host_logits", at, stop, time.time() - start, c_seconds=round(c_seconds, 3), jobs=args.jobs,
                     layer_mismatches={logits_name: int((got != want).sum())},
                     top1_agree=int((got.argmax(1) == want.argmax(1)).sum()))
        print(f"  host logits: {stop:,} images done, {state.mismatches('host_logits')} mismatches "
              f"({c_seconds / len(xc):.3f} s/image in C, {args.jobs} processes)", flush=True)


def summary(args, state):
    """Print every part's figures from the state file -> total mismatches (None where a part is not done)."""
    total, complete = 0, True
    rnd = state.part_chunks("random")
    if rnd:
        bad = sum(rnd[0]["mismatches_per_model"].values())
        print(f"random models ({len(RANDOM_MODELS)}, {rnd[0]['images_each']} images each, every layer): "
              f"{bad} mismatches")
        total += bad
    complete &= bool(rnd) or args.random_images == 0
    for part, goal, what in (("host_trace", args.trace_images, "host every layer"),
                             ("mcu", args.mcu_images, "Cortex-M4 (qemu mps2-an386) every layer"),
                             ("host_logits", args.images, "host logits")):
        done, bad = state.done(part), state.mismatches(part)
        layers = len(state.layer_totals(part))
        print(f"{what}: {done:,} of {goal:,} CIFAR-10 test images ({layers} layers compared): {bad} mismatches "
              f"({state.seconds(part):.0f} s)")
        total += bad
        complete &= done >= goal
    chunks = state.part_chunks("mcu")
    if chunks:
        sizes, stack = chunks[-1]["sizes"], max(c["stack_bytes"] or 0 for c in chunks)
        print(f"  Cortex-M4 flash: weights+params {sizes['weights']} B, code {sizes['code']} B, other const "
              f"{sizes['other_flash']} B; RAM: arena {sizes['arena']} B, all .bss {sizes['bss']} B, "
              f"stack high-water {stack} B")
    logits = state.part_chunks("host_logits")
    if logits:
        c_seconds = sum(c["c_seconds"] for c in logits)
        print(f"  host C time: {c_seconds:.0f} s for {state.done('host_logits'):,} images "
              f"({c_seconds / state.done('host_logits'):.3f} s/image/process, jobs {sorted({c['jobs'] for c in logits})}); "
              f"top-1 agrees on {state.total('host_logits', 'top1_agree'):,}")
    print(f"state file: {state.path}" + ("" if complete else " (incomplete: rerun with --resume)"))
    return total, complete


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="?", default=os.path.join(os.path.dirname(HERE), "weights", "mbv2_prom.npz"))
    p.add_argument("--data", help="CIFAR-10 root")
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--trace-images", type=int, default=100)
    p.add_argument("--mcu-images", type=int, default=20)
    p.add_argument("--random-images", type=int, default=4)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--chunk", type=int, default=500, help="host images per state-file record (default 500)")
    p.add_argument("--mcu-chunk", type=int, default=5, help="QEMU images per run and record (default 5)")
    p.add_argument("--state", help="state file (default ~/.cache/promref/agreement/c_agreement-<weights>.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the state file's run instead of starting over")
    args = p.parse_args()
    if min(args.images, args.trace_images, args.mcu_images, args.random_images) < 0 or \
            min(args.jobs, args.chunk, args.mcu_chunk) < 1:
        p.error("image counts must be >= 0; --jobs, --chunk and --mcu-chunk >= 1")
    stem = os.path.splitext(os.path.basename(args.weights))[0]
    model = load(args.weights)
    images, _ = load_cifar10("test", root=args.data)
    x = pixels_to_int8(images[:max(args.images, args.trace_images, args.mcu_images)])
    with tempfile.TemporaryDirectory(prefix="promref-c-bench-") as work:
        export = export_c(model, os.path.join(work, "shipped"))
        print(export.summary(), flush=True)
        arm = args.mcu_images > 0 and toolchain.have_arm_toolchain()
        identity = dict(benchmark="c_agreement", weights_sha256=sha256_of(args.weights),
                        library_sha256=library_sha256(export.outdir), images="CIFAR-10 test, in file order",
                        host_cc=compiler_version(toolchain.host_compiler()),
                        arm_cc=compiler_version(toolchain.ARM_CC) if arm else None)
        state = AgreementState(args.state or default_state_path(f"c_agreement-{stem}"), identity, args.resume)
        print(f"state: {state.path}; done so far: " + ", ".join(
            f"{part} {state.done(part):,}" for part in ("random", "host_trace", "mcu", "host_logits")), flush=True)
        part_random(args, state, work)
        binary = toolchain.build_host(export.outdir)
        part_host_trace(args, state, model, binary, x)
        if arm:
            part_mcu(args, state, model, toolchain.build_mcu(export.outdir, "cortex-m4"), x)
        elif args.mcu_images:
            print("Cortex-M4: skipped (arm-none-eabi-gcc, its objdump or qemu-system-arm missing)")
        part_host_logits(args, state, model, binary, x, work)
    total, complete = summary(args, state)
    print(f"total mismatches: {total}")
    return 0 if total == 0 and complete else 1


if __name__ == "__main__":
    sys.exit(main())
