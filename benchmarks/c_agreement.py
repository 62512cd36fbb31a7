"""The generated C library (promref export c) against promref, bit for bit.

    python benchmarks/c_agreement.py [WEIGHTS] [--data DIR] [--images 10000] [--trace-images 100]
                                     [--mcu-images 20] [--jobs 2] [--random-images 4]

1. WEIGHTS (default weights/mbv2_prom.npz) is exported and built with the host
   compiler (-std=c99 -Wall -Wextra -Werror -O2); the first N CIFAR-10 test
   images run through it (split over --jobs processes) and their int8 logits are
   compared with promref's numba backend; the first --trace-images are compared
   at every layer.
2. The same sources are built for a Cortex-M4 (arm-none-eabi-gcc) and
   --mcu-images run under qemu-system-arm (mps2-an386), compared at every
   layer; flash (weights, code) and RAM (arena, stack high-water mark) printed.
3. Random PROM and int8 models of both configurations (cifar width 0.35,
   imagenet width 0.1) in both rounding modes, --random-images each, every layer,
   on the host.
Prints every mismatch count; exits 0 only when all are 0.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from promref import load  # noqa: E402
from promref.data.cifar10 import load_cifar10  # noqa: E402
from promref.interop.c import export_c  # noqa: E402
from promref.interop.c import run, toolchain  # noqa: E402
from promref.preprocess import pixels_to_int8  # noqa: E402
from promref.synthetic import random_model  # noqa: E402


def layer_mismatches(expected, got):
    return sum(int((np.asarray(expected[k]) != got[k]).sum()) for k in expected)


def host_logits_parallel(binary, x, jobs, work):
    """Logits of all images, the image set split into ``jobs`` host processes."""
    parts = np.array_split(np.arange(len(x)), jobs)
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


def check_shipped(args, work):
    model = load(args.weights)
    export = export_c(model, os.path.join(work, "shipped"))
    print(export.summary())
    binary = toolchain.build_host(export.outdir)
    images, _ = load_cifar10("test", root=args.data)
    x = pixels_to_int8(images[:args.images])
    start = time.time()
    got = host_logits_parallel(binary, x, args.jobs, work)
    took = time.time() - start
    want = np.concatenate([model.forward(x[i:i + 500]) for i in range(0, len(x), 500)])
    bad = int((got != want).sum())
    print(f"host logits: {len(x)} CIFAR-10 test images, {bad} mismatches in {want.size} values "
          f"({took:.0f} s, {args.jobs} processes, {len(x) / took:.1f} images/s)")
    xt = x[:args.trace_images]
    _, trace = model.forward(xt, trace=True)
    bad_layers = layer_mismatches(trace, run.run_host(model, binary, xt, trace=True))
    print(f"host every layer: {len(xt)} images x {len(trace)} layers, {bad_layers} mismatches")
    total = bad + bad_layers
    if args.mcu_images and toolchain.have_arm_toolchain():
        elf = toolchain.build_mcu(export.outdir, "cortex-m4")
        xm = x[:args.mcu_images]
        start = time.time()
        got, info = run.run_qemu(model, elf, xm, "cortex-m4", timeout=3600)
        _, trace = model.forward(xm, trace=True)
        bad_mcu = layer_mismatches(trace, got)
        sizes = toolchain.mcu_sizes(elf)
        print(f"Cortex-M4 (qemu mps2-an386) every layer: {len(xm)} images, {bad_mcu} mismatches "
              f"({time.time() - start:.0f} s)")
        print(f"  flash: weights+params {sizes['weights']} B, code {sizes['code']} B, other const "
              f"{sizes['other_flash']} B; RAM: arena {sizes['arena']} B, all .bss {sizes['bss']} B, "
              f"stack high-water {info.get('stack_bytes')} B")
        total += bad_mcu
    return total


def check_random(args, work):
    total = 0
    rng = np.random.default_rng(0)
    for config, width in (("cifar", 0.35), ("imagenet", 0.1)):
        for scheme in ("prom", "int8"):
            for rounding in ("single", "double"):
                model = random_model(config, width, scheme, seed=1, rounding=rounding)
                export = export_c(model, os.path.join(work, f"{config}_{scheme}_{rounding}"))
                binary = toolchain.build_host(export.outdir)
                size = model.input.height
                x = rng.integers(-128, 128, (args.random_images, size, size, 3)).astype(np.int8)
                _, trace = model.forward(x, trace=True)
                bad = layer_mismatches(trace, run.run_host(model, binary, x, trace=True))
                print(f"random {config} w{width} {scheme} {rounding}: {len(x)} images x {len(trace)} layers, "
                      f"{bad} mismatches, arena {export.arena_bytes} B")
                total += bad
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="?", default=os.path.join(os.path.dirname(HERE), "weights", "mbv2_prom.npz"))
    p.add_argument("--data", help="CIFAR-10 root")
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--trace-images", type=int, default=100)
    p.add_argument("--mcu-images", type=int, default=20)
    p.add_argument("--random-images", type=int, default=4)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="promref-c-bench-") as work:
        total = check_random(args, work) + check_shipped(args, work)
    print(f"total mismatches: {total}")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
