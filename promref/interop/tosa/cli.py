"""``promref export tosa WEIGHTS OUT [--batch N] [--logits-only]``: write the TOSA flatbuffer.

Registered under ``promref export`` by :func:`register`; the file's graph
outputs are listed, in order, in ``OUT.json`` beside it.
"""
import json
import os


def cmd_export_tosa(args):
    from ...format import load
    from .writer import export_tosa
    model = load(args.weights)
    names = export_tosa(model, args.out, batch=args.batch, every_layer=not args.logits_only)
    info = {"source": os.path.basename(args.weights), "model": model.name, "rounding": model.rounding,
            "input": {"name": "input", "dtype": "int8", "shape": [args.batch, model.input.height, model.input.width, 3],
                      "zero_point": model.input.zero_point},
            "outputs": names}
    with open(args.out + ".json", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {args.out} ({os.path.getsize(args.out):,} bytes, TOSA 1.0, rounding {model.rounding!r}, "
          f"{len(names)} output(s)) and {args.out}.json")
    return 0


def register(subparsers):
    """Add ``tosa`` to the ``promref export`` subparsers."""
    p = subparsers.add_parser("tosa", help="TOSA 1.0 flatbuffer (integer ops; runs in the TOSA reference model)")
    p.add_argument("weights", help="promref weights file (.npz)")
    p.add_argument("out", help="output .tosa file")
    p.add_argument("--batch", type=int, default=1, help="batch size of the graph's static input shape (default 1)")
    p.add_argument("--logits-only", action="store_true", help="only the logits as graph output (default: every layer)")
    p.set_defaults(func=cmd_export_tosa)
    return p
