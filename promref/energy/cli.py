"""``promref energy``: per-layer and total energy and storage tables.

    promref energy WEIGHTS [options]
    promref energy --arch mobilenetv2 --config imagenet --width 1.0 [--scheme prom] [options]
"""
import argparse
import json
import sys

from .. import limits
from ..errors import PromrefError
from ..fileio import loads_json, output_file, read_regular
from ..architectures import CONFIGS as MODEL_CONFIGS, SCHEMES
from .accounting import PRESETS, Accounting, accounting as make_accounting
from .report import format_grid, format_report, format_twins, option_grid, paper_comparison, report, twin_accuracies
from .tables import energy_table


DESCRIPTION = ("Operation counts, energy (per-operation table, default Horowitz 2014, 45 nm) and "
               "storage of a model in four configurations (float32, float16, int8, PROM), per layer "
               "and in total.  See docs/energy.md.")


def register(subparsers):
    """Add ``energy`` to the subcommands of ``promref`` (one argparse tree for the whole CLI)."""
    p = subparsers.add_parser("energy", help="energy and storage report (docs/energy.md)", description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run, print_usage=p.print_usage)


def build_parser():
    """The stand-alone parser of :func:`main` (the same arguments as ``promref energy``)."""
    p = argparse.ArgumentParser(prog="promref energy", description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(print_usage=p.print_usage)
    return p


def add_arguments(p):
    """The arguments of ``promref energy`` on parser ``p``."""
    p.add_argument("weights", nargs="?", help="a promref .npz weights file")
    p.add_argument("--arch", choices=("mobilenetv2",), help="report an architecture's layout instead of a file")
    p.add_argument("--config", choices=tuple(MODEL_CONFIGS), default="imagenet",
                   help="input configuration of --arch (default imagenet)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of --arch (default 1.0)")
    p.add_argument("--scheme", choices=tuple(SCHEMES), default="prom",
                   help="quantization scheme of the --arch layout whose layers are listed (default prom)")
    p.add_argument("--accounting", default="paper", metavar="NAME",
                   help=f"accounting preset (default paper): {', '.join(PRESETS)}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change one accounting option, e.g. --set ternary_zeros=sparse (repeatable)")
    p.add_argument("--sparse", action="store_true", help="skip zero ternary weights (same as "
                   "--set ternary_zeros=sparse; needs a PROM weights file)")
    p.add_argument("--energy-table", metavar="FILE.json",
                   help="JSON object of pJ per operation overriding Horowitz 2014 (keys: add_int8, add_int32, "
                        "mul_int8, mul_int32, add_fp16, mul_fp16, add_fp32, mul_fp32, name, source)")
    p.add_argument("--no-layers", action="store_true", help="leave out the per-layer table")
    p.add_argument("--paper", action="store_true",
                   help="also print the paper comparison (MobileNetV2 1.0/224) under every accounting")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="instead of the report, print PROM's reductions against float16 for every "
                        "combination of these option values (repeatable)")
    p.add_argument("--json", action="store_true", help="print the report as JSON data instead of tables")
    p.add_argument("--cards", nargs="+", default=[], metavar="CARD.json",
                   help="the twins' model cards (PROM and int8 of one float run, as promref train --out writes "
                        "them): add each twin's energy and top-1 with its 95%% interval")
    p.add_argument("--plot", metavar="OUT.png", help="with --cards: write the energy-vs-accuracy plot here")
    p.add_argument("--list-accountings", action="store_true", help="list the accounting presets and exit")


def _overrides(pairs):
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _list_accountings(out):
    for acct in PRESETS.values():
        changed = {k: v for k, v in acct.options().items() if getattr(Accounting(), k) != v}
        out.write(f"{acct.name}: {acct.description}\n")
        if changed:
            out.write("    " + ", ".join(f"{k}={v}" for k, v in changed.items()) + "\n")


def main(argv=None):
    """Run ``promref energy`` with ``argv`` (without the program and sub-command names) -> exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # -h, or a usage error argparse already printed
        return int(e.code or 0)
    return run(args)


def run(args):
    """``promref energy`` on parsed arguments -> exit status (1 for a bad model, option or table)."""
    if args.list_accountings:
        _list_accountings(sys.stdout)
        return 0
    if (args.weights is None) == (args.arch is None):
        args.print_usage(sys.stderr)
        sys.stderr.write("promref energy: error: give either a WEIGHTS file or --arch mobilenetv2\n")
        return 2
    try:
        overrides = _overrides(args.set)
        if args.sparse:
            overrides["ternary_zeros"] = "sparse"
        acct = make_accounting(args.accounting, **overrides)
        table = energy_table(args.energy_table)
        if args.weights is not None:
            source = args.weights
        else:
            source = dict(config=args.config, width=args.width, scheme=args.scheme)
        if args.grid:
            grid = {key: value.split(",") for key, value in _overrides(args.grid).items()}
            rows = option_grid(source, grid, acct, table)
            if args.json:
                json.dump(rows, sys.stdout, indent=1)
                sys.stdout.write("\n")
            else:
                sys.stdout.write(f"PROM vs float16 from accounting {acct.name!r}, energy table {table.name}:\n"
                                 + format_grid(rows) + "\n")
            return 0
        rep = report(source, acct, table)
        if args.cards or args.plot:
            return _twins(rep, args)
        if args.json:
            data = rep.to_dict()
            if args.paper or _is_paper_arch(rep):
                data["paper_comparison"] = paper_comparison(table=table)
            json.dump(data, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(format_report(rep, layers=not args.no_layers,
                                           paper=True if args.paper else None) + "\n")
    except (PromrefError, ValueError) as e:
        sys.stderr.write(f"promref energy: error: {e}\n")
        return 1
    return 0


def _twins(rep, args):
    """The twins' energy and accuracy from their cards (and the plot, with --plot)."""
    if not args.cards:
        raise ValueError("--plot draws the twins of --cards CARD.json ...: give their model cards")
    cards = [loads_json(read_regular(path, PromrefError, "model card", max_bytes=limits.MAX_META_BYTES))
             for path in args.cards]
    sys.stdout.write(format_twins(rep, twin_accuracies(cards)) + "\n")
    if args.plot:
        out = output_file(args.plot)
        from .plot import energy_accuracy_plot  # matplotlib only when a plot is asked for
        energy_accuracy_plot(rep, cards).savefig(out, dpi=150, bbox_inches="tight")
        sys.stdout.write(f"wrote {args.plot}\n")
    return 0


def _is_paper_arch(rep):
    return rep.arch.get("name") == "mobilenetv2" and rep.arch.get("config") == "imagenet" \
        and float(rep.arch.get("width", 0)) == 1.0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
