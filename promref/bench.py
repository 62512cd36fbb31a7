"""Inference benchmark: ``python -m promref.bench``.

Prints images/s of the numpy and numba backends for the CIFAR and ImageNet
configurations at batch 1 and 64, with 1 and 2 threads, and each run's peak
memory.  Every case runs in a fresh subprocess (so thread counts take effect
and peak RSS belongs to that case alone) and reports the median of repeated
timed runs after a warm-up.  Speed goals live here, never in timed tests.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _worker(args):
    import numpy as np

    from .format import load
    from .synthetic import random_model

    model = load(args.weights) if args.weights else random_model(args.config, args.width, args.scheme, seed=0)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(args.batch, model.input.height, model.input.width, 3)).astype(np.int8)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.forward(x, backend=args.backend)  # warm-up: numba compiles (or loads its cache) here
    times = []
    deadline = time.perf_counter() + args.max_seconds
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.forward(x, backend=args.backend)
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    median = statistics.median(times)
    print(json.dumps(dict(config=args.config, backend=args.backend, batch=args.batch, threads=args.threads,
                          runs=len(times), median_s=median, images_per_s=args.batch / median,
                          ms_per_image=1e3 * median / args.batch,
                          peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          rss_before_run_mb=rss_before / 1024)))


def run_case(config, backend, batch, threads, opts):
    """Run one case in a subprocess with ``threads`` threads; returns its result dict."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "promref.bench", "--worker", "--config", config, "--backend", backend,
           "--batch", str(batch), "--threads", str(threads), "--width", str(opts.width), "--scheme", opts.scheme,
           "--repeats", str(opts.repeats), "--max-seconds", str(opts.max_seconds)]
    if opts.weights:
        cmd += ["--weights", opts.weights]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"benchmark case failed: {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m promref.bench", description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["cifar", "imagenet"], choices=["cifar", "imagenet"])
    p.add_argument("--backends", nargs="+", default=["numpy", "numba"], choices=["numpy", "numba"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--scheme", default="prom", choices=["prom", "int8"])
    p.add_argument("--weights", help="benchmark this weights file instead of a random model")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=20.0, help="stop repeating a case after this long")
    p.add_argument("--json", action="store_true", help="print one JSON object per case")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", default="cifar", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="numba", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    what = args.weights or f"random MobileNetV2 ({args.scheme}, width {args.width})"
    print(f"promref inference benchmark: {what}; median of up to {args.repeats} runs per case")
    print(f"{'config':<9s} {'backend':<7s} {'batch':>5s} {'threads':>7s} {'img/s':>9s} {'ms/img':>9s} "
          f"{'peak RSS MB':>11s} {'vs numpy':>9s}")
    for config in args.configs:
        for batch in args.batches:
            for threads in args.threads:
                baseline = None
                for backend in args.backends:
                    r = run_case(config, backend, batch, threads, args)
                    if args.json:
                        print(json.dumps(r))
                        continue
                    baseline = baseline or (r["images_per_s"] if backend == "numpy" else None)
                    ratio = f"{r['images_per_s'] / baseline:8.1f}x" if baseline else ""
                    print(f"{config:<9s} {backend:<7s} {batch:>5d} {threads:>7d} {r['images_per_s']:>9.1f} "
                          f"{r['ms_per_image']:>9.2f} {r['peak_rss_mb']:>11.0f} {ratio:>9s}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
