"""``promref export tflite WEIGHTS OUT.tflite [--tflite-derived] [--ternary-int4] [--save-model TWIN.npz] [--check N]``."""
import os

__all__ = ["register"]


def register(subparsers):
    """Add the ``tflite`` subcommand to ``promref export``'s subparsers."""
    p = subparsers.add_parser("tflite", help="a .tflite file LiteRT's reference kernels and TFLite Micro run "
                                             "bit for bit like promref (docs/deploy-tflite.md)")
    p.add_argument("weights", help="promref weights (.npz)")
    p.add_argument("out", help="the .tflite file to write")
    p.add_argument("--tflite-derived", action="store_true",
                   help="export the model's TFLite-derived twin (rounding 'double', multipliers re-derived from "
                        "float32 scales) instead of refusing a model TFLite cannot reproduce")
    p.add_argument("--ternary-int4", action="store_true",
                   help="store ternary filters as TFLite INT4 (half the bytes of int8)")
    p.add_argument("--save-model", metavar="NPZ", help="also save the promref model the file reproduces")
    p.add_argument("--check", type=int, default=0, metavar="N",
                   help="run N random images in LiteRT (BUILTIN_REF) and compare every layer")
    p.set_defaults(func=cmd_export_tflite)


def cmd_export_tflite(args):
    import numpy as np

    from ...format import load, save
    from .exporter import export_tflite

    from ...fileio import output_file
    from .scales import TfliteExportError

    output_file(args.out, TfliteExportError, ".tflite file")
    model = load(args.weights)
    result = export_tflite(model, args.out, derived=args.tflite_derived, ternary_int4=args.ternary_int4)
    changed = result.model.metadata.get("tflite_derived", {}).get("layers_changed") if args.tflite_derived else 0
    print(f"wrote {args.out} ({len(result.data):,} bytes, {len(result.tensors)} layers)"
          + (f"; TFLite-derived twin: {changed} layers' integers re-derived" if args.tflite_derived else ""))
    if args.save_model:
        save(result.model, args.save_model)
        print(f"wrote {args.save_model} (the promref model {args.out} reproduces)")
    if args.check:
        from .runners import run_litert
        spec = result.model.input
        x = np.random.default_rng(0).integers(-128, 128, (args.check, spec.height, spec.width, 3), dtype=np.int8)
        _, trace = result.model.forward(x, trace=True)
        theirs = run_litert(result.model, x, export=result)
        bad = sum(int(np.count_nonzero(theirs[k] != trace[k])) for k in trace)
        print(f"LiteRT BUILTIN_REF vs promref on {args.check} random images, {len(trace)} layers: {bad} mismatches")
        return 0 if bad == 0 else 1
    return 0
