"""Sweep of hostile inputs over promref's entry points (issue 15).

    python benchmarks/hostile_inputs.py [--per-kind N] [--seed S] [--timeout T] [--memory-gib G]

Generates hostile or odd inputs of its own (mutated weights files, images,
CIFAR-10 pickles, suite manifests, checkpoints, FIFOs, wrong types, bad CLI
arguments), runs each in a forked child under a memory cap (RLIMIT_AS) and a
timeout, and counts: accepted, refused with a PromrefError, foreign
exceptions, hangs, out-of-memory, and external programs run (fake ``gs``,
``convert``, ... first on PATH leave a mark when executed).  Exits 1 unless
hangs, OOMs, foreign exceptions and external programs are all 0.
tests/test_hostile_sweep.py runs a small sample.
"""
import argparse
import io
import json
import os
import pickle
import resource
import signal
import sys
import tempfile
import time
import zipfile
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import promref  # noqa: E402
from promref.errors import PromrefError  # noqa: E402

EXTERNAL = ("gs", "gsc", "gswin32c", "convert", "magick", "djpeg", "cjpeg", "xdg-open", "display", "sh-probe")


def _flip(data, rng, count):
    data = bytearray(data)
    for _ in range(count):
        data[int(rng.integers(len(data)))] = int(rng.integers(256))
    return bytes(data)


def _variants(data, rng, n):
    """n hostile variants of ``data``: byte flips, truncations, junk tails, splices."""
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(_flip(data, rng, int(rng.integers(1, 20))))
        elif kind == 1:
            out.append(data[:int(rng.integers(len(data)))])
        elif kind == 2:
            out.append(data + rng.bytes(int(rng.integers(1, 4096))))
        else:
            a = int(rng.integers(len(data)))
            out.append(data[:a] + data[a:][::-1][:1000] + data[a:])
    return out


def _write(work, name, data):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def weights_cases(work, rng, n):
    from promref.synthetic import random_model
    good = os.path.join(work, "good.npz")
    promref.save(random_model("cifar", 0.35, "prom", seed=0), good)
    data = open(good, "rb").read()
    cases = [("weights", (lambda p=_write(work, f"w{i}.npz", v): promref.load(p)))
             for i, v in enumerate(_variants(data, rng, n))]
    with zipfile.ZipFile(good) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    meta = json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes())

    def with_meta(change, tag):
        m = json.loads(json.dumps(meta))
        change(m)
        raw = json.dumps(m).replace('"__DEEP__"', "[" * 100_000 + "]" * 100_000).encode()
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.frombuffer(raw, np.uint8))
        entries = dict(members, **{"meta.npy": buf.getvalue()})
        path = os.path.join(work, f"meta-{tag}.npz")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for k, v in entries.items():
                z.writestr(k, v)
        return ("weights-meta", lambda: promref.load(path))

    meta_changes = {
        "height": lambda m: m["input"].update(height=65536), "resize": lambda m: m["input"].update(resize=60000),
        "scale": lambda m: m["layers"][-1].update(out_scale=1.7e308), "tiny": lambda m: m["layers"][-1].update(out_scale=5e-324),
        "label": lambda m: m["labels"].__setitem__(0, "\ud800"), "esc": lambda m: m["labels"].__setitem__(0, "\x1b[2J"),
        "op": lambda m: m["layers"][1].update(op="matmul"), "digits": lambda m: m["metadata"].update(x=10 ** 3000),
        "deep": lambda m: m["metadata"].update(x="__DEEP__"),
        "nlayers": lambda m: m.update(layers=m["layers"] * 60), "ver": lambda m: m.update(format_version=1.0),
        "chan": lambda m: m["layers"][-1].update(out_channels=1 << 40), "none": lambda m: m.update(layers=None),
        "labels": lambda m: m.update(labels=[[]] * 10), "input": lambda m: m.update(input=[]),
    }
    cases += [with_meta(c, t) for t, c in meta_changes.items()]
    bomb = os.path.join(work, "bomb.npz")
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in members.items():
            z.writestr(k, v)
        for i in range(3):  # 600 MB deflated to < 1 MB
            z.writestr(f"junk{i}.npy", b"\0" * (200 << 20))
    cases.append(("weights-bomb", lambda: promref.load(bomb)))
    fifo = os.path.join(work, "fifo.npz")
    os.mkfifo(fifo)
    cases += [("weights-path", lambda p=p: promref.load(p))
              for p in (fifo, work, "/dev/zero", "/nonexistent", None, 3, b"\0", os.fsencode(good), io.StringIO("x"))]
    return cases


def image_cases(work, rng, n):
    from PIL import Image
    from promref.preprocess import load_image, preprocess
    photo = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    cases = []
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, fmt)
        for i, v in enumerate(_variants(buf.getvalue(), rng, n // 6 + 1)):
            path = _write(work, f"i{fmt}{i}", v)
            cases.append(("image", lambda p=path: preprocess(p, height=32, width=32, resize=36)))
    eps = _write(work, "x.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    cases.append(("image-eps", lambda: load_image(eps)))
    cases.append(("image-eps-pil", lambda: load_image(Image.open(eps))))
    strip = os.path.join(work, "strip.png")
    Image.new("RGB", (1_000_000, 1)).save(strip)
    cases.append(("image-strip", lambda: preprocess(strip, height=32, width=32, resize=32)))
    for shape, dtype in (((1, 1000000, 3), np.uint8), ((4, 4, 3), np.float32), ((4, 4, 5), np.uint8),
                         ((0, 4, 3), np.uint8), ((4,), np.uint8), ((3, 3, 3), np.int64)):
        cases.append(("image-array", lambda s=shape, d=dtype: preprocess(np.zeros(s, d), height=32, width=32, resize=32)))
    cases.append(("image-matrix", lambda: preprocess(np.matrix(np.zeros((8, 8), np.uint8)), height=4, width=4)))
    for size in (32000, 65536, -1, 0, 2.5):
        cases.append(("image-size", lambda s=size: preprocess(photo, height=s, width=32, resize=s)))
    fifo = os.path.join(work, "fifo.png")
    os.mkfifo(fifo)
    cases += [("image-path", lambda p=p: load_image(p)) for p in (fifo, work, "/dev/zero", None, 3)]
    return cases


def pickle_cases(work, rng, n):
    from promref.data.cifar10 import load_cifar10
    good = {b"batch_label": b"x", b"labels": [1] * 10, b"data": np.zeros((10, 3072), np.uint8)}
    data = pickle.dumps(good, protocol=2)
    payloads = _variants(data, rng, n) + [
        b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.",
        b"\x80\x02c_codecs\nencode\nB" + (5_000_000).to_bytes(4, "little") + b"A" * 5_000_000 + b"X\x01\x00\x00\x00xq\x86R.",
        pickle.dumps([1, 2, 3]), pickle.dumps({b"data": "x", b"labels": [1]}),
    ]
    cases = []
    for i, v in enumerate(payloads):
        root = os.path.join(work, f"cifar{i}", "cifar-10-batches-py")
        os.makedirs(root)
        _write(root, "test_batch", v)
        cases.append(("cifar-pickle", lambda r=root: load_cifar10("test", root=r, layout="py", records_per_batch=None)))
    return cases


def suite_cases(work, rng, n):
    from promref.conformance.suite import load_manifest
    base = {"format": "promref-conformance-suite", "format_version": 1, "cases": [
        {"id": "global_avgpool/a", "kind": "op", "op": "global_avgpool", "rounding": None, "description": "",
         "params": {}, "inputs": [{"name": "x", "file": "x.npy", "dtype": "int8", "shape": [1], "data_offset": 128,
                                   "sha256": "0" * 64}], "outputs": []}]}
    texts = [json.dumps(base)]
    for value in ("x", None, 7, [], {}, "../../etc/passwd", "/etc/passwd", "a\nb", 1e308, -1, True):
        for key in ("id", "params", "inputs", "outputs", "op", "kind"):
            m = json.loads(texts[0])
            m["cases"][0][key] = value
            texts.append(json.dumps(m))
    texts += ["[" * 100_000 + "]" * 100_000, '{"format": "promref-conformance-suite", "format_version": 1, "cases": ["x"]}']
    texts = [t.encode() for t in texts] + _variants(texts[0].encode(), rng, n) + [b"\xff\xfe"]
    cases = []
    for i, t in enumerate(texts):
        d = os.path.join(work, f"suite{i}")
        os.makedirs(d)
        _write(d, "manifest.json", t)
        cases.append(("suite", lambda d=d: load_manifest(d)))
    d = os.path.join(work, "suite-fifo")
    os.makedirs(d)
    os.mkfifo(os.path.join(d, "manifest.json"))
    cases.append(("suite", lambda: load_manifest(d)))
    return cases


def checkpoint_cases(work, rng, n):
    from dataclasses import asdict
    from promref.train.checkpoint import load_checkpoint, save_checkpoint
    from promref.train.loop import TrainConfig, build_network
    from promref.train.optim import SGD
    config = TrainConfig(arch="dsnet", dsnet_channels=(8, 8, 8), epochs_float=2, epochs_qat=0, batch_size=4)
    net = build_network(config)
    path = os.path.join(work, "ckpt.npz")
    save_checkpoint(path, net, SGD(net.parameters()), dict(epoch=0, config=asdict(config), history=[{}]))
    data = open(path, "rb").read()
    return [("checkpoint", lambda p=_write(work, f"c{i}.npz", v): load_checkpoint(p, build_network(config), config, 1))
            for i, v in enumerate(_variants(data, rng, n))]


def cli_cases(work):
    from promref.cli import main
    argvs = [["train", "--data", "/nonexistent", *a] for a in (
        ["--batch-size", "0"], ["--batch-size", "-1"], ["--epochs-float", "-1"], ["--width", "0"], ["--width", "nan"],
        ["--seed", "-1"], ["--scheme", "foo"], ["--arch", "foo"], ["--lr", "nan"], ["--rounding", "foo"],
        ["--out", work], ["--checkpoint-dir", "/etc/passwd"], ["--resume"])]
    argvs += [["random-model", os.path.join(work, "r.npz"), *a] for a in (
        ["--width", "0"], ["--width", "-1"], ["--width", "nan"], ["--width", "5"], ["--seed", "-1"])]
    argvs += [["random-model", work], ["random-model", "/proc/nope/x.npz"], ["inspect", "/dev/null"],
              ["inspect", work], ["infer", "/nonexistent", "x.png"], ["conformance", "check", work, "--python", "nomodule"]]
    argvs += [["conformance", "check", work, "--cmd", "true", "--timeout", t] for t in ("nan", "inf", "-1", "0", "1e400")]
    argvs += [["conformance", "check", work, "--reference", "--json", work], ["conformance", "rounding", "--json", work],
              ["conformance", "check", work, "--cmd", "true", "--keep", "/etc/passwd"],
              ["export", "tflite", "/nonexistent.npz", work], ["export", "tflite", "/nonexistent.npz", "/no/such/x.tflite"]]
    deep = _write(work, "deep.json", b'{"add_int8": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    argvs += [["energy", "--arch", "mobilenetv2", "--energy-table", deep], ["energy", work], ["energy", "/dev/null"]]

    def run(argv):
        code = main(argv)
        if code not in (1, 2):
            raise AssertionError(f"exit code {code}")
        raise PromrefError("refused")  # a clean CLI refusal counts as refused
    cases = [("cli", lambda a=a: run(a)) for a in argvs]
    from promref.interop.onnx.export import main as onnx_main  # python -m promref.interop.onnx

    def run_onnx(argv):
        code = onnx_main(argv)
        if code != 2:
            raise AssertionError(f"exit code {code}")
        raise PromrefError("refused")
    weights = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights", "mbv2_prom.npz")
    cases += [("cli", lambda a=a: run_onnx(a)) for a in ([weights, work], [weights, "/no/such/m.onnx"],
                                                         ["/nonexistent.npz", os.path.join(work, "m.onnx")])]
    return cases


def run_case(fn, memory_bytes, timeout):
    """Fork; run ``fn`` under RLIMIT_AS; -> outcome string."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            fn()
            result = "accepted"
        except PromrefError:
            result = "refused"
        except MemoryError:
            result = "oom"
        except SystemExit as e:
            result = "refused" if e.code in (1, 2) else f"foreign:SystemExit({e.code})"
        except BaseException as e:  # noqa: BLE001 - this is what we count
            result = f"foreign:{type(e).__name__}:{str(e)[:80]}"
        os.write(w, result.encode()[:300])
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        return "hang"
    out = os.read(r, 400).decode(errors="replace")
    os.close(r)
    if not out:
        return "oom" if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGKILL, signal.SIGSEGV) \
            else f"foreign:died({status})"
    return out


def _vm_size():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-kind", type=int, default=60, help="mutated variants per kind of file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--memory-gib", type=float, default=3.0, help="address space allowed above the parent's")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as work:
        bindir, marks = os.path.join(work, "bin"), os.path.join(work, "marks")
        os.makedirs(bindir)
        os.makedirs(marks)
        for name in EXTERNAL:  # any external program promref runs leaves a mark
            _write(bindir, name, f"#!/bin/sh\ntouch {marks}/{name}\n".encode())
            os.chmod(os.path.join(bindir, name), 0o755)
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        n = args.per_kind
        cases = (weights_cases(work, rng, n) + image_cases(work, rng, n) + pickle_cases(work, rng, n // 2)
                 + suite_cases(work, rng, n // 2) + checkpoint_cases(work, rng, n // 2) + cli_cases(work))
        memory = _vm_size() + int(args.memory_gib * (1 << 30))
        counts, by_kind, start = Counter(), Counter(), time.time()
        for kind, fn in cases:
            outcome = run_case(fn, memory, args.timeout)
            counts[outcome.split(":")[0]] += 1
            by_kind[(kind, outcome.split(":")[0])] += 1
            if args.verbose or outcome.split(":")[0] in ("foreign", "hang", "oom"):
                print(f"{kind:14s} {outcome}")
        external = sorted(os.listdir(marks))
    print(f"{len(cases)} inputs in {time.time() - start:.0f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f", external programs run {len(external)} {external}")
    for (kind, outcome), v in sorted(by_kind.items()):
        print(f"  {kind:14s} {outcome:9s} {v}")
    bad = counts["foreign"] + counts["hang"] + counts["oom"] + len(external)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
