"""Fingerprint of a short training run, to prove that a refactoring leaves training bit for bit alone.

Runs 3 float steps and 3 QAT steps (batch-norm re-estimation in between) of
MobileNetV2 width 0.25 on random CIFAR-sized data with a fixed seed, through
the public ``promref.train.loop.train``; then hashes every array of the
checkpoint it wrote (parameters, batch-norm buffers, observers, optimizer
velocity: exactly what a resumed run reads) and of the exported integer model,
and the int8 logits of that model on the test images.

    python tools/training_fingerprint.py                     # print the fingerprint (JSON)
    python tools/training_fingerprint.py --against /work/main  # compare with another checkout
    python tools/training_fingerprint.py --float-only --against /work/main  # the float phase alone

``--float-only`` runs the float step alone (``epochs_qat`` 0, no export): what a
float-only run's checkpoint holds, so a change to the QAT phase can be shown to
leave the float phase alone.

The promref imported is the checkout this script lives in (``--root`` to
choose another).  With ``--against DIR`` the same script runs a second time on
the checkout ``DIR`` and the two fingerprints must be equal (exit status 1 if
not), so nothing is recorded here that a change could make stale.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digest(array):
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()


def fingerprint(backend="numba", float_only=False):
    """{name: sha256} of everything a 3 + 3 step run (3 float steps with ``float_only``) leaves behind."""
    from promref.train.loop import Progress, TrainConfig, train

    rng = np.random.default_rng(1234)
    images = rng.integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=24)
    test = (rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=8))
    config = TrainConfig(width=0.25, epochs_float=1, epochs_qat=0 if float_only else 1, batch_size=8, warmup_epochs=1,
                         bn_recalibration_batches=2, seed=7, backend=backend)
    with tempfile.TemporaryDirectory() as tmp:
        network, history = train(config, (images, labels), test, checkpoint_dir=tmp,
                                 progress=Progress(stream=open(os.devnull, "w")))
        with np.load(os.path.join(tmp, "last.npz"), allow_pickle=False) as z:
            out = {f"checkpoint/{k}": _digest(z[k]) for k in z.files if k != "meta"}
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
    timing = ("images_per_s", "seconds")
    out["history"] = json.dumps([{k: v for k, v in r.items() if k not in timing} for r in history], sort_keys=True)
    out["meta/epoch"] = meta["epoch"]
    if float_only:
        return out
    model = network.export("fingerprint")
    for layer in model.layers:
        for field in ("weights", "bias", "multiplier", "shift", "weight_scale"):
            value = getattr(layer, field)
            if value is not None:
                out[f"model/{layer.name}/{field}"] = _digest(value)
        out[f"model/{layer.name}/scalars"] = repr((layer.out_scale, layer.out_zero_point, layer.out_min,
                                                  layer.out_max, layer.left_shift, layer.weight_zero_point))
    x = (test[0].astype(np.int16) - 128).astype(np.int8)
    out["model/logits"] = _digest(model.forward(x, backend="numpy"))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="DIR", help="another promref checkout to compare with")
    parser.add_argument("--root", default=ROOT, help="the promref checkout to import (default: this one)")
    parser.add_argument("--backend", default="numba", choices=("numba", "numpy"))
    parser.add_argument("--float-only", action="store_true", help="fingerprint the float phase alone")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.root))
    import promref
    if os.path.dirname(os.path.dirname(os.path.abspath(promref.__file__))) != os.path.abspath(args.root):
        parser.error(f"imported {promref.__file__}, not the checkout {args.root}")
    if not args.against:
        json.dump(fingerprint(args.backend, args.float_only), sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    mine = fingerprint(args.backend, args.float_only)
    theirs = json.loads(subprocess.run([sys.executable, os.path.abspath(__file__), "--backend", args.backend,
                                        "--root", os.path.abspath(args.against)]
                                       + (["--float-only"] if args.float_only else []),
                                       check=True, capture_output=True, text=True).stdout)
    differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    for key in differ:
        print(f"differs: {key}")
    print(f"{len(mine)} entries, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
