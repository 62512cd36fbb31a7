"""``promref export c WEIGHTS OUTDIR``: the argument registration of the C export target."""


def cmd_export_c(args):
    from .export import export_c
    report = export_c(args.weights, args.outdir)
    print(report.summary())
    print(f"build: make -C {args.outdir} host  (or mcu, run-mcu); see docs/deploy-c.md")
    return 0


def register(subparsers):
    """Add the ``c`` target to the subparsers of ``promref export``."""
    p = subparsers.add_parser("c", help="standalone C99 library of the model (docs/deploy-c.md)")
    p.add_argument("weights", help="promref weights file (.npz)")
    p.add_argument("outdir", help="directory to write the library into")
    p.set_defaults(func=cmd_export_c)
