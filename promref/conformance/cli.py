"""``promref conformance ...`` (also ``python -m promref.conformance ...``).

    generate OUTDIR [--weights W ...]          write the golden-vector suite
    check SUITE --cmd "CMD"                    check an external program (subprocess protocol)
    check SUITE --python MODULE:FUNCTION       check a Python callable
    check SUITE --rule half_even               check promref itself with another rounding rule
    check SUITE --backend tosa                 check a foreign runtime from backends.BACKENDS
    rounding [--images ...]                    measure how often rounding rules disagree
"""
import argparse
import importlib
import json
import os
import sys

from ..fileio import output_file
from . import rounding as rules
from .suite import SuiteError


def _load_callable(spec):
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SuiteError(f"--python needs MODULE:FUNCTION, got {spec!r}")
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise SuiteError(f"--python {spec}: cannot import it: {e}") from None
    return obj


def _csv(text):
    return [p for p in text.replace(",", " ").split() if p]


def cmd_generate(args):
    from .generate import DEFAULT_RANDOM_MODELS, generate
    manifest = generate(args.outdir, weights=args.weights, include_shipped=not args.no_shipped,
                        random_models=() if args.no_random_models else DEFAULT_RANDOM_MODELS,
                        model_images=args.model_images, shipped_images=args.shipped_images, overwrite=args.force,
                        log=None if args.quiet else print, quiet=args.quiet)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.outdir) for f in fs)
    print(f"wrote {args.outdir}: {len(manifest['cases'])} cases, {total / 1e6:.1f} MB")
    return 0


def cmd_check(args):
    from .check import PythonImplementation, SubprocessImplementation, check
    from .reference import RuleImplementation, reference_implementation
    chosen = [x for x in (args.cmd, args.python, args.rule, args.reference or None, args.backend) if x]
    if len(chosen) != 1:
        print("promref conformance check: give exactly one of --cmd, --python, --rule, --reference, --backend",
              file=sys.stderr)
        return 2
    ops = set(_csv(args.ops)) if args.ops else None
    if args.json:  # refused before the check runs, not after
        output_file(args.json, SuiteError, "JSON report")
    if args.cmd:
        impl = SubprocessImplementation(args.cmd, supported_ops=ops, timeout=args.timeout, keep_dir=args.keep)
    elif args.python:
        impl = PythonImplementation(_load_callable(args.python), supported_ops=ops, name=args.python)
    elif args.backend:
        from .backends import backend_implementation
        impl = backend_implementation(args.backend)
    elif args.rule:
        impl = PythonImplementation(RuleImplementation(args.rule), supported_ops=ops, name=f"rule {args.rule}")
    else:
        impl = PythonImplementation(reference_implementation, supported_ops=ops, name="promref reference")
    report = check(args.suite, impl, cases=args.case, log=print if args.verbose else None, quiet=args.quiet)
    print(report.text(verbose=False))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, indent=1)
    return 0 if report.ok else 1


def cmd_rounding(args):
    from .measure import default_images, format_table, measure_models
    if args.json:
        output_file(args.json, SuiteError, "JSON file")
    images = args.images or default_images()
    if not images:
        print("no images found: pass --images FILE ...", file=sys.stderr)
        return 2
    results = measure_models(images[: args.limit] if args.limit else images, weights=args.weights,
                             configs=[tuple(c.split(":")) for c in args.model] if args.model else None,
                             log=print)
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


DESCRIPTION = "Golden vectors and a checker for PROM implementations."


def register(subparsers):
    """Add ``conformance`` (with its own subcommands) to the subcommands of ``promref``."""
    p = subparsers.add_parser("conformance", help="golden vectors and the checker (docs/conformance.md)",
                              description=DESCRIPTION)
    add_commands(p)
    p.set_defaults(func=run)


def build_parser():
    """The stand-alone parser of :func:`main` and ``python -m promref.conformance``."""
    parser = argparse.ArgumentParser(prog="promref conformance", description=DESCRIPTION)
    add_commands(parser)
    return parser


def add_commands(parser):
    """The ``generate``, ``check`` and ``rounding`` subcommands on ``parser``."""
    sub = parser.add_subparsers(dest="conformance_command", metavar="{generate,check,rounding}", required=True)
    p = sub.add_parser("generate", help="write the golden-vector suite into OUTDIR")
    p.add_argument("outdir")
    p.add_argument("--weights", nargs="+", action="extend", default=[], metavar="W",
                   help="extra promref weights files to add as full-model cases")
    p.add_argument("--no-shipped", action="store_true", help="leave out weights/mbv2_prom.npz")
    p.add_argument("--no-random-models", action="store_true", help="leave out the random model cases")
    p.add_argument("--model-images", type=int, default=2, help="input images per random model (default 2)")
    p.add_argument("--shipped-images", type=int, default=1, help="input images per weights file (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty OUTDIR")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(conformance_func=cmd_generate)

    p = sub.add_parser("check", help="run an implementation against a suite")
    p.add_argument("suite")
    p.add_argument("--cmd", help='external program: runs as CMD REQUEST.json OUT_DIR (docs/conformance.md)')
    p.add_argument("--python", metavar="MODULE:FUNCTION", help="a callable f(op, inputs, params) -> outputs")
    p.add_argument("--rule", choices=tuple(rules.RULES), help="promref's ops with this rounding rule")
    p.add_argument("--reference", action="store_true", help="promref's own reference kernels (sanity check)")
    p.add_argument("--backend", metavar="NAME", help="a foreign runtime of promref.conformance.backends "
                   "(tosa, onnxruntime, ...): exports each model case to it")
    p.add_argument("--ops", help="comma-separated ops the implementation supports (others are skipped)")
    p.add_argument("--case", action="append", metavar="GLOB", help="only case ids matching GLOB (repeatable)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per case for --cmd")
    p.add_argument("--keep", metavar="DIR", help="keep the per-case request directories under DIR")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="print every case as it runs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(conformance_func=cmd_check)

    p = sub.add_parser("rounding", help="how often rounding rules disagree on real activations")
    p.add_argument("--images", nargs="+", metavar="IMAGE", help="image files (default: ../shared/data samples)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images")
    p.add_argument("--weights", nargs="+", action="extend", default=[], metavar="W", help="weights files to add")
    p.add_argument("--model", action="append", metavar="CONFIG:WIDTH:SCHEME",
                   help="random models to measure (default imagenet:1.0:prom and imagenet:1.0:int8)")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    p.set_defaults(conformance_func=cmd_rounding)


def main(argv=None):
    """Entry point for ``promref conformance``; ``argv`` excludes the word 'conformance'."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run(build_parser().parse_args(argv))


def run(args):
    """One parsed ``conformance`` subcommand -> exit status; a bad suite or argument is exit 2."""
    from ..errors import PromrefError
    try:
        return args.conformance_func(args)
    except (PromrefError, FileExistsError) as e:  # SuiteError is a PromrefError
        print(f"promref conformance: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
