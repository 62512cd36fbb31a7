"""Training throughput (images/s) of promref's trainer, next to PyTorch's when it is installed.

    python benchmarks/train_throughput.py --width 1.0 --batch 128 --threads 2
    python benchmarks/train_throughput.py --threads 1 --malloc both   # promref with and without kept memory

Times full training steps (forward, loss, backward, SGD update) of the CIFAR
MobileNetV2 in float mode and in QAT mode on random data; medians of
``--steps`` steps after two warm-up steps.  PyTorch (optional, CPU) runs the
same architecture (torchvision layout, CIFAR strides) with the same batch and
thread count, float only.  Each engine runs in its own subprocess.  promref
runs as ``promref train`` does, keeping freed memory (promref/train/memory.py);
``--malloc default`` or ``both`` also measures glibc's default behaviour.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _promref(args):
    import numpy as np

    from promref.train.loop import TrainConfig, build_network
    from promref.train.network import softmax_cross_entropy
    from promref.train.optim import SGD

    if args.malloc == "kept":
        from promref.train.memory import keep_freed_memory
        keep_freed_memory()
    net = build_network(TrainConfig(width=args.width))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch, 32, 32, 3)).astype(np.uint8)
    y = rng.integers(0, 10, args.batch)
    opt = SGD(net.parameters())
    result = {}
    for mode in ("float", "qat"):
        times = []
        for i in range(args.steps + 2):
            start = time.perf_counter()
            net.zero_grad()
            logits = net.forward(x, mode=mode, training=True)
            net.backward(softmax_cross_entropy(logits, y)[1], mode=mode)
            opt.step(net.gradients(), 0.01)
            if i >= 2:
                times.append(time.perf_counter() - start)
        result[mode] = args.batch / statistics.median(times)
    return result


def _torch(args):
    import torch
    from torch import nn

    torch.manual_seed(0)

    def block(cin, cout, stride, t):
        hidden = cin * t
        layers = []
        if t != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers)

    from promref.architectures import mobilenetv2_layout
    shapes = {s.name: s for s in mobilenetv2_layout("cifar", args.width)}
    stem = shapes["stem"]
    mods = [nn.Conv2d(3, stem.out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(stem.out_channels), nn.ReLU6()]
    for b in range(1, 18):
        dw = shapes[f"b{b}.depthwise"]
        cin = shapes[f"b{b}.expand"].in_channels if f"b{b}.expand" in shapes else dw.in_channels
        t = dw.in_channels // cin
        mods.append(block(cin, shapes[f"b{b}.project"].out_channels, dw.stride, t))
    last = shapes["last_conv"]
    mods += [nn.Conv2d(last.in_channels, last.out_channels, 1, bias=False), nn.BatchNorm2d(last.out_channels),
             nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last.out_channels, 10)]
    net = nn.Sequential(*mods)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    times = []
    for i in range(args.steps + 2):
        start = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return {"float": args.batch / statistics.median(times)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--malloc", choices=("kept", "default", "both"), default="kept",
                   help="promref with freed memory kept (as promref train runs), glibc's default, or both")
    p.add_argument("--engine", choices=("promref", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine:
        if args.engine == "torch":
            import torch
            torch.set_num_threads(args.threads)
        print(json.dumps(_promref(args) if args.engine == "promref" else _torch(args)))
        return 0
    env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(f"training throughput, CIFAR MobileNetV2 width {args.width}, batch {args.batch}, "
          f"{args.threads} thread(s), median of {args.steps} steps")
    mallocs = ("kept", "default") if args.malloc == "both" else (args.malloc,)
    for engine, malloc in [("promref", m) for m in mallocs] + [("torch", "default")]:
        cmd = [sys.executable, __file__, "--engine", engine, "--width", str(args.width), "--batch",
               str(args.batch), "--threads", str(args.threads), "--steps", str(args.steps), "--malloc", malloc]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        name = f"{engine} ({malloc} malloc)" if engine == "promref" else engine
        if out.returncode:
            reason = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
            print(f"  {name:24s} not measured: {reason}")
            continue
        for mode, rate in json.loads(out.stdout.strip().splitlines()[-1]).items():
            print(f"  {name:24s} {mode:6s} {rate:8.1f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
